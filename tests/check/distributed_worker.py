"""Run under ``torchrun``: each rank checks its shard of a labelled set; rank 0 writes the figures.

Usage: ``torchrun --standalone --nproc_per_node 2 distributed_worker.py OUT.json``. The set and the
model are built from fixed seeds, so one process (``python distributed_worker.py OUT.json``) checks
the same images; ``test_distributed.py`` compares the two.
"""

import json
import sys

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from cloud_models import coordinate_mlp, graph, index_embedding

from pytest_equivariance import (
    check_e3_equivariant,
    check_permutation_equivariant,
    check_shift_equivariant,
    check_shift_invariant,
)
from pytest_equivariance.check.distributed import world
from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.inputs import labelled_shapes


def model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        # A dense head over the feature map: predictions move with the image, so shifts change some.
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(6 * 10 * 10, 5),
        ).eval()


def clouds(distributed: bool) -> DataLoader:
    """Six point clouds of 5 to 9 points, one per item, sharded under torchrun."""
    positions = [graph(nodes=5 + i % 5, seed=i)[0] for i in range(6)]
    return DataLoader(positions, batch_size=None,
                      sampler=DistributedSampler(positions, shuffle=False) if distributed else None)


def graphs(distributed: bool) -> DataLoader:
    """Six graphs of 5 to 9 nodes, as (features, edge_index), one per item, sharded under torchrun."""
    items = [graph(nodes=5 + i % 5, seed=i)[1:] for i in range(6)]
    return DataLoader(items, batch_size=None,
                      sampler=DistributedSampler(items, shuffle=False) if distributed else None)


def main(out: str) -> None:
    torch.set_num_threads(1)
    distributed = "RANK" in __import__("os").environ
    if distributed:
        dist.init_process_group("gloo")
    images, labels = labelled_shapes(48, 20, seed=5, margin=6)
    data = TensorDataset(images, labels)
    sampler = DistributedSampler(data, shuffle=False) if distributed else None
    loader = DataLoader(data, batch_size=5, sampler=sampler)
    net = model()
    results = {
        "invariant": check_shift_invariant(net, loader, seed=3, localize=False),
        "crop": check_shift_invariant(net[:3], loader, mode="crop", max_shift=2, seed=3, localize=False),
        "equivariant": check_shift_equivariant(net[:3], loader, seed=3, localize=False),
        "lie": check_shift_invariant(net, loader, measure="lie"),
        "cloud": check_e3_equivariant(coordinate_mlp(), clouds(distributed), output_fields="points", trials=4,
                                      localize=False),
        "permuted": check_permutation_equivariant(index_embedding(), graphs(distributed), trials=4, localize=False),
    }
    try:  # every rank would read the whole set: refused under torchrun, fine in one process
        check_shift_invariant(net, DataLoader(data, batch_size=5), seed=3, localize=False)
        unsharded = None
    except EquivarianceUsageError as error:
        unsharded = str(error)
    if world()[0] == 0:
        with open(out, "w") as f:
            json.dump({k: r.to_json() for k, r in results.items()} | {"world": world()[1], "unsharded": unsharded}, f)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

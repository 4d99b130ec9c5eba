"""Groups of space on volumes: the cube's elements are exact voxel permutations, models built to be
equivariant pass at float32 tolerances, plain ones fail and are localised, wrong declarations explain
themselves. escnn's 3-D models are in test_escnn_volumes.py."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optional import require
import pytest_equivariance as pe
from pytest_equivariance.check import groups, volume_groups
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.seeding import seeded

SHAPE = (2, 1, 9, 9, 9)
VOLUME = (-3, -2, -1)


class CubeConv(nn.Module):
    """A 3-D convolution whose kernels are averaged over the cube's 24 rotations, circular padding:
    equivariant to O (and to Oh: the average is symmetric under the inversion too) on scalar fields."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3, 3) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.stack([e.spatial(self.weight, VOLUME) for e in volume_groups.cube_elements()]).mean(0)
        return F.conv3d(F.pad(x, (1,) * 6, mode="circular"), w)


class Lifting(nn.Module):
    """A lifting convolution onto O: output channel ``h`` correlates with the kernel moved by ``h``,
    so the output is one regular field of O."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, 1, 3, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.cat([e.spatial(self.weight, VOLUME) for e in volume_groups.cube_elements()])
        return F.conv3d(F.pad(x, (1,) * 6, mode="circular"), w)


class Gradient3d(nn.Module):
    """Central differences with circular padding, as (along W, along H, along D): a vector field."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([(x.roll(-1, d) - x.roll(1, d)) / 2 for d in (-1, -2, -3)], 1)


class CubicNorm(nn.Module):
    """The gradient's 4-norm to the fourth, ``Σ_d (∂_d x)^4``: symmetric under the cube's 48 elements
    (exactly), but weighs an axis three times a diagonal, so not under other rotations."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Gradient3d()(x).pow(4).sum(1, keepdim=True)


class Gaussian3d(nn.Module):
    """A Gaussian blur (sigma 1, 7³) then a square: rotation-invariant filters, equivariant to every rotation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.arange(-3.0, 4.0)
        g = torch.exp(-(r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) / 2)
        return F.conv3d(x, (g / g.sum())[None, None], padding=3) ** 2


def cube_net() -> nn.Module:
    with seeded(0):
        return nn.Sequential(CubeConv(1, 4), nn.ReLU(), CubeConv(4, 2))


def plain_net() -> nn.Module:
    with seeded(0):
        return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                             nn.Conv3d(4, 2, 3, padding=1, padding_mode="circular"))


# -- the elements -----------------------------------------------------------------------------------------


def test_cube_elements_are_rot90_and_flips_in_the_documented_convention() -> None:
    x = torch.randn(2, 3, 5, 6, 7)
    elements = {e.label: e for e in volume_groups.cube_elements(True)}
    assert len(elements) == 48 and list(elements)[0] == "identity"
    cube = torch.randn(1, 1, 5, 5, 5)
    # z points towards the viewer, x along W, y up: the quarter turn about z is the plane's rot90.
    assert torch.equal(elements["rotation 90° about z"].spatial(x, VOLUME), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(elements["rotation 90° about x"].spatial(cube, VOLUME), torch.rot90(cube, 1, (-2, -3)))
    assert torch.equal(elements["rotation 90° about y"].spatial(cube, VOLUME), torch.rot90(cube, 1, (-1, -3)))
    assert torch.equal(elements["inversion"].spatial(x, VOLUME), x.flip(-3, -2, -1))
    for e in elements.values():  # every element undoes itself exactly
        assert torch.equal(e.undo(e.spatial(cube, VOLUME), VOLUME), cube)


def test_the_cube_group_is_closed_and_its_regular_representation_permutes() -> None:
    for inversions, order in ((False, 24), (True, 48)):
        group = groups.parse_group("Oh" if inversions else "O")
        assert group.order == order and group.exact and len(group.elements()) == order - 1
        for e in volume_groups.cube_elements(inversions):
            m = group.regular_matrix(e)
            assert torch.equal(m.sum(0), torch.ones(order)) and torch.equal(m.sum(1), torch.ones(order))


def test_off_grid_rotations_resample_close_to_the_exact_ones() -> None:
    """A rotation by 90.3° goes through the resampler and lands next to rot90 of a smooth volume."""
    from pytest_equivariance.check.transforms import soft_disk
    from pytest_equivariance.inputs import natural_images

    x = natural_images((1, 1, 16, 16, 16), seed=0, exponent=2.0).double()
    x = x * soft_disk(x.shape, VOLUME, dtype=x.dtype)
    c, s = math.cos(0.005), math.sin(0.005)
    near = volume_groups.SpaceElement(((s, -c, 0.0), (c, s, 0.0), (0.0, 0.0, 1.0)))
    assert not near.on_grid
    exact = torch.rot90(x, 1, (-2, -1))
    assert float((near.spatial(x, VOLUME) - exact).norm() / exact.norm()) < 0.05


# -- models that are known to pass or fail -----------------------------------------------------------------


def test_a_cube_averaged_cnn_passes_O_and_a_plain_one_fails_naming_its_first_layer() -> None:
    good = pe.check_rotation_equivariant(cube_net(), input_shape=SHAPE, group="O")
    assert good.passed and good.group == "O" and good.mode == "exact" and len(good.trials) == 23
    assert max(t.max_abs for t in good.trials) < 1e-5
    bad = pe.check_rotation_equivariant(plain_net(), input_shape=SHAPE, group="O")
    assert not bad.passed and min(t.max_abs for t in bad.trials) > 0.1
    assert bad.profile is not None and bad.profile.culprit.qualname == "0"
    assert bad.worst.transform.startswith("rotation")


def test_global_pooling_of_the_cube_cnn_is_O_invariant_and_Oh_invariant() -> None:
    pooled = nn.Sequential(cube_net(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    for group in ("O", "Oh"):
        result = pe.check_rotation_invariant(pooled, input_shape=SHAPE, group=group)
        assert result.passed and max(t.max_abs for t in result.trials) < 1e-5
    assert not pe.check_rotation_invariant(nn.Sequential(plain_net(), nn.AdaptiveAvgPool3d(1), nn.Flatten()),
                                           input_shape=SHAPE, group="O", localize=False).passed


def test_the_layer_that_breaks_it_is_named() -> None:
    with seeded(0):
        model = nn.Sequential(CubeConv(1, 4), nn.ReLU(), nn.Conv3d(4, 2, 3, padding=1, padding_mode="circular"))
    result = pe.check_rotation_equivariant(model, input_shape=SHAPE, group="O")
    assert not result.passed and result.profile.culprit.qualname == "2"


def test_vector_fields_rotate_with_the_volume() -> None:
    result = pe.check_rotation_equivariant(Gradient3d(), input_shape=SHAPE, group="Oh", output_fields="vector")
    assert result.passed and len(result.trials) == 47 and max(t.max_abs for t in result.trials) < 1e-6
    assert result.fields == {"input": "1 scalar", "output": "1 vector"}
    assert not pe.check_rotation_equivariant(Gradient3d(), input_shape=SHAPE, group="O").passed


def test_regular_fields_of_O_permute_with_the_group() -> None:
    with seeded(0):
        lifting = Lifting()
    result = pe.check_rotation_equivariant(lifting, input_shape=SHAPE, group="O", output_fields="regular")
    assert result.passed and max(t.max_abs for t in result.trials) < 1e-5
    assert not pe.check_rotation_equivariant(lifting, input_shape=SHAPE, group="O").passed


def test_SO3_reports_exact_and_resampled_elements_apart() -> None:
    """A Gaussian filter passes every element; a cube-symmetric but anisotropic map passes the exact
    elements at float32 tolerances and fails only the resampled ones, and the notes give each kind
    its figures."""
    smooth = pe.check_rotation_equivariant(Gaussian3d(), input_shape=(2, 1, 15, 15, 15), group="SO3")
    assert smooth.passed and len(smooth.trials) == 23 + volume_groups.DEFAULT_DRAWS
    assert max(t.rel_l2 for t in smooth.trials if not t.params["exact"]) < 0.05
    cube = pe.check_rotation_equivariant(CubicNorm(), input_shape=(2, 1, 15, 15, 15), group="SO3")
    exact = [t for t in cube.trials if t.params["exact"]]
    resampled = [t for t in cube.trials if not t.params["exact"]]
    assert len(exact) == 23 and all(t.passed for t in exact) and max(t.max_abs for t in exact) < 1e-4
    assert not cube.passed and not any(t.passed for t in resampled) and min(t.rel_l2 for t in resampled) > 0.2
    lines = [n for n in cube.notes if n.startswith(("exact elements", "resampled elements"))]
    assert lines[0].startswith("exact elements (23") and lines[1].startswith("resampled elements (8)")


def test_exact_elements_of_SO3_are_judged_at_the_dtypes_tolerances_not_the_resamplings() -> None:
    """A Gaussian blur plus 1 % of a plain convolution: its relative L2 error stays far below 0.1 on
    every element, but the exact elements see the broken symmetry, and fail."""
    with seeded(0):
        plain = nn.Conv3d(1, 1, 3, padding=1, padding_mode="circular")

    class Nearly(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return Gaussian3d()(x) + 1e-2 * plain(x)

    result = pe.check_rotation_equivariant(Nearly(), input_shape=(2, 1, 15, 15, 15), group="SO3", localize=False)
    exact = [t for t in result.trials if t.params["exact"]]
    assert max(t.rel_l2 for t in result.trials) < 0.05
    assert not result.passed and not any(t.passed for t in exact)
    assert all(t.passed for t in result.trials if not t.params["exact"])


def test_results_name_their_elements_in_reports_json_and_baselines() -> None:
    from pytest_equivariance.gates.baseline import check_kind
    from pytest_equivariance.report.terminal import headline

    result = pe.check_rotation_equivariant(plain_net(), input_shape=SHAPE, group="O")
    back = CheckResult.from_json(json.loads(json.dumps(result.to_json())))
    labels = {t.transform for t in back.trials}
    assert "rotation 90° about z" in labels and "rotation 120° about (1, 1, 1)" in labels
    assert check_kind(result) == "rotation_equivariant[O; input: 1 scalar; output: 2 scalar]"
    assert result.worst.transform in headline(result)


# -- errors a user can cause ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(2, 1, 9, 9), group="O"), r"group='O' rotates volumes, but the inputs \(2, 1, 9, 9\) have 2"),
        (dict(input_shape=SHAPE, group="Oh", output_fields="vector"),
         "2 output channels cannot hold vector fields of Oh"),
        (dict(input_shape=SHAPE, group="SO3", output_fields="regular"), "regular fields need a finite group"),
        (dict(input_shape=SHAPE, group="O", output_fields="irrep(99)"), r"irrep\(99\) in the output fields is beyond"),
        (dict(input_shape=SHAPE, group="O", output_fields="sign"), "sign fields change sign"),
    ],
)
def test_wrong_declarations_get_one_sentence(kwargs, message) -> None:
    with pytest.raises(pe.EquivarianceUsageError, match=message) as info:
        pe.check_rotation_equivariant(cube_net(), **kwargs)
    assert re.search(r"\. [A-Z]", str(info.value)) is None and str(info.value).endswith(".")


def test_a_monai_3d_unet_runs_and_fails_O_naming_its_first_strided_conv() -> None:
    """Medical volumes arrive in any orientation; MONAI's UNet (strided convolutions, zero padding)
    is not equivariant to the cube's rotations, and the profile names where it breaks first."""
    nets = require("monai.networks.nets")
    with seeded(0):
        unet = nets.UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,),
                         num_res_units=0).eval()
    result = pe.check_rotation_equivariant(unet, input_shape=(1, 1, 16, 16, 16), group="O")
    assert not result.passed and min(t.max_abs for t in result.trials) > 0.1
    assert result.profile.culprit.qualname == "model.0.conv"


def test_irrep_fields_of_space_are_wigner_d_matrices_in_e3nns_basis() -> None:
    """e3nn's spherical harmonics of orders 1 and 2 of the gradient (in x, y, z) turn exactly by our
    ``irrep(1)`` and ``irrep(2)`` under every element of Oh; claimed as scalars they fail."""
    o3 = require("e3nn.o3")

    class Harmonics(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            g = Gradient3d()(x)  # along (W, H, D); x = W, y = -H, z = -D
            xyz = torch.stack([g[:, 0], -g[:, 1], -g[:, 2]], -1)
            return o3.spherical_harmonics([1, 2], xyz, normalize=False).movedim(-1, 1)

    result = pe.check_rotation_equivariant(Harmonics(), input_shape=SHAPE, group="Oh",
                                           output_fields=["irrep(1)", "irrep(2)"])
    assert result.passed and max(t.max_abs for t in result.trials) < 1e-5
    assert not pe.check_rotation_equivariant(Harmonics(), input_shape=SHAPE, group="O", localize=False).passed

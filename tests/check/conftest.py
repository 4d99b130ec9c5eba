"""Shared set-up for the dynamic-check tests."""

import torch

# The models here are tiny: one thread avoids thread start-up and contention costs that would
# otherwise dominate each check (and keeps figures identical across machines with different cores).
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def trained_model():
    """A small aliasing classifier trained on labelled shapes (``trained_classifier.py``), once per process."""
    from trained_classifier import small_cnn, train

    from pytest_equivariance.seeding import seeded

    with seeded(0):
        return train(small_cnn())

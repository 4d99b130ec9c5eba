"""Shared set-up for the dynamic-check tests."""

import torch

# The models here are tiny: one thread avoids thread start-up and contention costs that would
# otherwise dominate each check (and keeps figures identical across machines with different cores).
torch.set_num_threads(1)

"""What each check argument accepts: one rule per keyword, shared by the API and the pytest markers.

Pure Python (no torch), so the plugin can validate marker arguments at collection time, before any
model is built; ``check/api.py`` applies the same rules when a check is called.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from pytest_equivariance.check.transforms import FLIP_NAMES, ROTATION_MODES, SCALE_MODES, SHIFT_MODES

#: Check family -> the modes it accepts.
MODES = {"shift": SHIFT_MODES, "rotation": ROTATION_MODES, "scale": SCALE_MODES}
#: Device strings a check accepts ("auto" picks CUDA when available).
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|(cuda|xpu)(:\d+)?)$")
#: Named flips ``angles`` may list beside angles in degrees.
_FLIPS = tuple(FLIP_NAMES)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (bools are not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_flip(value: Any) -> bool:
    return isinstance(value, str) and value in _FLIPS


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (bools are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


#: The largest rescaling factor a check applies: 16 times the size per axis is 256 times the pixels.
MAX_SCALE = 16.0


def _factor(value: Any) -> bool:
    return is_real(value) and math.isfinite(value) and 0 < value <= MAX_SCALE and value != 1


def int_tuple(value: Any) -> bool:
    """Whether ``value`` is a non-empty tuple or list of integers."""
    return isinstance(value, (tuple, list)) and len(value) > 0 and all(is_int(v) for v in value)


def real_tuple(value: Any) -> bool:
    """Whether ``value`` is a non-empty tuple or list of finite real numbers."""
    return (isinstance(value, (tuple, list)) and len(value) > 0
            and all(is_real(v) and math.isfinite(v) for v in value))


#: The most trials a check runs: each is a pass of the batch through the model, and transforms are
#: built up front, so a larger count is a mistake that would only exhaust memory or time.
MAX_TRIALS = 10_000

#: Seeds go to torch.manual_seed, which takes a signed 64-bit integer.
MAX_SEED = 2**63

#: The evaluation protocols ``protocol=`` names (check/protocols).
PROTOCOL_NAMES = ("zhang2019", "azulay2019", "chaman2021", "michaeli2023")
#: ... and those a scale check's ``protocol=`` names.
SCALE_PROTOCOL_NAMES = ("azulay2019",)

#: What ``measure=`` accepts: finite transforms, or Lie derivatives (check/lie).
MEASURES = ("error", "lie")


def expected_value(name: str, value: Any, family: str) -> str | None:
    """Return what ``name=value`` should have been (a phrase after "pass"), or None when it is acceptable.

    ``family`` is "shift", "rotation" or "scale": it decides which modes are valid ("cloud" and
    "permutation" for point clouds and graphs, where ``group`` names an E(3) group).
    """
    if family == "cloud" and name == "group":
        return None if value in ("E3", "SE3", "O3", "SO3") else "one of 'E3', 'SE3', 'O3' or 'SO3'"
    if name == "permute":
        return None if value in ("nodes", "edges") else "'nodes' or 'edges'"
    if name == "input_shape":
        if isinstance(value, str):
            from pytest_equivariance.errors import InputShapeError
            from pytest_equivariance.inputs import parse_shape

            try:
                value = parse_shape(value)
            except InputShapeError:
                return "a shape such as (1, 3, 32, 32): batch, channels, then the spatial sizes"
        if not (int_tuple(value) and len(value) >= 3 and all(v > 0 for v in value)):
            return "a shape such as (1, 3, 32, 32): batch, channels, then the spatial sizes"
    elif name == "max_shift":
        if not (is_int(value) and value > 0):
            return "a positive integer number of pixels, e.g. max_shift=8"
    elif name == "shifts":
        ok = isinstance(value, (tuple, list)) and len(value) > 0
        ok = ok and (all(is_real(v) and math.isfinite(v) for v in value) or all(real_tuple(v) for v in value))
        if ok and not all(is_real(v) for v in value) and len({len(v) for v in value}) != 1:
            ok = False
        if not ok:
            return "a non-empty list of shifts or of tuples, in pixels, e.g. [(0, 1), (3, -2)] or [(0, 0.5)]"
    elif name == "shift":
        if not ((is_real(value) and math.isfinite(value)) or real_tuple(value)):
            return "a number or a tuple of numbers of pixels, one per spatial dim, e.g. (1, -3) or (0, 0.5)"
    elif name == "subpixel":
        if not isinstance(value, bool):
            return "True (draw fractional shifts) or False"
    elif name == "scale":
        if not _factor(value):
            return f"a positive factor other than 1 (the identity), at most {MAX_SCALE:g}, e.g. scale=0.5 or scale=2"
    elif name == "scales":
        if not (isinstance(value, (tuple, list)) and value and all(_factor(v) for v in value)):
            return f"a non-empty list of positive factors other than 1, at most {MAX_SCALE:g}, e.g. scales=[0.5, 2]"
    elif name == "scale_range":
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(_factor(v) for v in value)
                and value[0] < value[1]):
            return (f"two positive factors other than 1, at most {MAX_SCALE:g}, (low, high) with low < high, e.g. "
                    f"scale_range=(0.5, 2.0)")
    elif name == "max_channel_error":
        if not (is_real(value) and value >= 0 and math.isfinite(value)):
            return "a finite number >= 0, e.g. max_channel_error=1e-5"
    elif name == "min_psnr":
        if not (is_real(value) and math.isfinite(value)):
            return "a number of decibels, e.g. min_psnr=40"
    elif name == "measure":
        if not isinstance(value, str) or value not in MEASURES:
            return " or ".join(repr(m) for m in MEASURES)
    elif name == "trials":
        if not (is_int(value) and 0 < value <= MAX_TRIALS):
            return f"a positive integer up to {MAX_TRIALS}"
    elif name == "batch_size":
        if not (is_int(value) and value > 0):
            return "a positive integer"
    elif name == "mode":
        if not isinstance(value, str) or value not in MODES[family]:
            return " or ".join(repr(m) for m in MODES[family])
    elif name == "angles":
        ok = isinstance(value, (tuple, list)) and len(value) > 0
        if not (ok and all(is_real(v) or _is_flip(v) for v in value)):
            return "a non-empty list of angles in degrees (or 'hflip', 'vflip'), e.g. [90, 180, 270]"
    elif name == "angle":
        if not (is_real(value) or _is_flip(value)):
            return "an angle in degrees (or 'hflip', 'vflip'), e.g. 90"
    elif name == "dims":
        dims = (value,) if is_int(value) else value
        if not (int_tuple(dims) and len(set(dims)) == len(dims) and len(dims) <= 3):
            return "an integer or a tuple of up to 3 distinct integers naming spatial dims, e.g. (-2, -1)"
    elif name in ("atol", "rtol"):
        if not (is_real(value) and value >= 0 and math.isfinite(value)):
            return "a finite number >= 0"
    elif name == "min_consistency":
        if not (is_real(value) and 0 <= value <= 1):
            return "a fraction between 0 and 1, e.g. 0.95"
    elif name == "seed":
        if not (is_int(value) and 0 <= value < MAX_SEED):
            return "a non-negative integer below 2**63"
    elif name == "margin":
        if not (is_int(value) and value >= 0):
            return "a non-negative integer"
    elif name == "device":
        text = getattr(value, "type", None) and str(value) or value
        if not (isinstance(text, str) and DEVICE_PATTERN.match(text)):
            return "'cpu', 'cuda', 'cuda:N' or 'auto'"
    elif name == "localize":
        if value is not None and not isinstance(value, bool):
            return "True (always), False (never) or None (on failure)"
    elif name == "group":
        from pytest_equivariance.check.groups import MAX_ORDER, TRIVIAL_REMEDY, is_trivial, parse_group
        from pytest_equivariance.errors import EquivarianceUsageError

        if is_trivial(value):
            return f"a group with more than the identity to check ('C1' has nothing else): {TRIVIAL_REMEDY}"
        try:
            parse_group(value)
        except EquivarianceUsageError:
            return (f"a group: 'C<N>' with 2 <= N <= {MAX_ORDER} or 'D<N>' with 1 <= N <= {MAX_ORDER} (e.g. 'C4', "
                    f"'D8'), 'SO2' or 'O2' for images; 'O', 'Oh', 'SO3' or 'O3' for volumes")
    elif name in ("grid", "progress"):
        if not isinstance(value, bool):
            return "True or False"
    elif name == "limit":
        if not (is_int(value) and value > 0):
            if family in ("cloud", "permutation"):
                return "a positive number of the loader's items (graphs or batches of them), e.g. limit=100"
            return "a positive number of images, e.g. limit=1000"
    elif name in ("min_accuracy", "max_accuracy_drop"):
        if not (is_real(value) and 0 <= value <= 1):
            return "a fraction between 0 and 1, e.g. 0.9"
    elif name == "protocol":
        # A Protocol object is checked where it is resolved (check.protocols), which imports the loop.
        names = SCALE_PROTOCOL_NAMES if family == "scale" else PROTOCOL_NAMES
        if isinstance(value, str) and value not in names or value is None or isinstance(value, (int, float)):
            return f"one of {', '.join(repr(p) for p in names)}, or a Protocol"
    return None

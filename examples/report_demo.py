"""The small suite behind docs/img/report.png: two failing checks with pictures, one passing check.

Not collected by ``pytest examples`` (its name does not start with ``test_``); run it by name::

    pytest examples/report_demo.py --equiv-html report.html
    python scripts/report_screenshot.py    # the picture in docs/reports.md and its hash
"""

import pytest
from models import AliasingCNN, CircularConvNet, build

SHAPE = (2, 3, 32, 32)


@pytest.mark.shift_invariant(input_shape=SHAPE, grid=True)
def test_aliasing_cnn_is_shift_invariant():
    return build(AliasingCNN)


@pytest.mark.rotation_invariant(input_shape=SHAPE, angles=[15, 30, 45, 60, 75, 90, 180, 270],
                                mode="interp", atol=0.01, rtol=0)
def test_rotation_invariance_of_aliasing_cnn():
    return build(AliasingCNN)


@pytest.mark.shift_equivariant(input_shape=SHAPE, grid=True)
def test_circular_conv_net_is_shift_equivariant():
    return build(CircularConvNet)

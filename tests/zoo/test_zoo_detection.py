"""Zoo tier: every torchvision detection, keypoint and instance-segmentation model (``-m zoo``).

Each lints without a failed target (built with ``weights=None, weights_backbone=None``: its forward
does not trace whole, so the backbone, FPN and heads are analysed one by one), and runs a shift
check with ``detections(...)`` to its figures with no error. Random-initialised detectors emit boxes
only with their score threshold lowered to 0; they are built small (64-pixel images, few proposals
and detections) so that the whole tier stays cheap. Their verdicts are not asserted: random weights
are not equivariant, and a detector's box regression is not expected to be.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from optional import require
from pytest_equivariance import check_shift_equivariant, detections
from pytest_equivariance.cli import main
from pytest_equivariance.inputs import natural_images
from pytest_equivariance.lint import lint_model

torchvision = require("torchvision")
models = torchvision.models
pytestmark = pytest.mark.zoo

DETECTION = models.list_models(module=models.detection)

#: COCO's keypoints that trade places under a horizontal flip (nose is 0; then eyes, ears, shoulders, ...).
COCO_FLIP_PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]


def test_there_are_twelve_detection_models():
    assert len(DETECTION) == 12


def small(name: str) -> torch.nn.Module:
    """A detector that emits boxes at random init and runs fast on a CPU."""
    rcnn = name.startswith(("fasterrcnn", "maskrcnn", "keypointrcnn"))
    kwargs = ({"box_score_thresh": 0.0, "box_detections_per_img": 5, "rpn_pre_nms_top_n_test": 50,
               "rpn_post_nms_top_n_test": 10} if rcnn else {"score_thresh": 0.0, "detections_per_img": 5})
    if not name.startswith("ssd"):
        kwargs.update(min_size=64, max_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = models.get_model(name, weights=None, weights_backbone=None, num_classes=3, **kwargs).eval()
    if name.startswith("ssd"):  # SSD resizes to its fixed 300 or 320 pixels; 128 keeps its last maps non-empty
        model.transform.min_size, model.transform.max_size = (128,), 128
    return model


@pytest.mark.parametrize("name", DETECTION)
def test_every_detector_lints_without_error(name):
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = models.get_model(name, weights=None, weights_backbone=None)
    report = lint_model(model, target=name)
    assert report.errors == []
    assert report.findings, "every torchvision detector's backbone subsamples"
    assert report.coverage > 0.75


@pytest.mark.parametrize("name", DETECTION)
def test_every_detector_runs_a_detections_check(name):
    fields = (detections(points="keypoints", flip_pairs=COCO_FLIP_PAIRS) if name.startswith("keypoint")
              else detections(masks="masks") if name.startswith("maskrcnn") else detections())
    x = natural_images((1, 3, 64, 64), seed=0)
    result = check_shift_equivariant(small(name), inputs=x, max_shift=4, trials=1, margin=0, output_fields=fields)
    (trial,) = result.trials
    assert trial.matched + trial.appeared > 0 and trial.matched + trial.vanished > 0
    assert trial.max_abs >= 0 and (trial.mean_iou is None or 0.5 <= trial.mean_iou <= 1)
    if name.startswith("maskrcnn"):  # instance masks, compared inside their boxes
        assert trial.matched == 0 or 0 <= trial.mask_iou <= 1 and trial.mask_change >= 0


def test_a_detection_builder_lints_from_the_command_line_without_downloading(capsys):
    # torchvision's detection builders default to an ImageNet backbone; the linter asks for none.
    code = main(["torchvision.models.detection:ssdlite320_mobilenet_v3_large", "--no-cache", "--exit-zero"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "EQ002" in out.out and "download" not in out.err

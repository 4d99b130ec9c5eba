"""Zoo tier: the linter on real torchvision and timm models (``-m zoo``).

Models are built with ``weights=None`` under ``torch.device("meta")``: no memory for weights, no
initialisation cost, and linting never needs values. Every classification model must lint without
an error; for several, the exact counts below were checked against the architecture's source.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from typing import Iterator

import pytest
import torch

from optional import require
from pytest_equivariance.lint import lint_model

torchvision = require("torchvision")
models = torchvision.models

pytestmark = pytest.mark.zoo


@contextlib.contextmanager
def _regnet_params_on_cpu() -> Iterator[None]:
    # RegNet computes its block widths with torch ops and .tolist() while it is being built, which
    # a meta device context cannot do: compute just those on the CPU.
    from torchvision.models.regnet import BlockParams

    original = BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original(cls, *args, **kwargs)

    BlockParams.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        BlockParams.from_init_params = classmethod(original)


def build(name: str, **kwargs) -> torch.nn.Module:
    with warnings.catch_warnings(), _regnet_params_on_cpu(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return models.get_model(name, weights=None, **kwargs)


def counts(report) -> dict[str, int]:
    return dict(sorted(Counter(f.code for f in report.findings).items()))


CLASSIFICATION = models.list_models(module=models)


def test_there_are_eighty_classification_models():
    assert len(CLASSIFICATION) == 80


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_every_classification_model_lints_without_error(name):
    report = lint_model(build(name), target=name)
    assert report.errors == []
    assert report.trace == "fx" and report.coverage == 1.0
    assert report.findings, "every torchvision classifier subsamples somewhere"
    assert all(f.file and f.line for f in report.findings if f.kind == "module")


# Counts read off each architecture (default rules; 224x224 input):
EXPECTED = {
    # stem conv (7x7/2) + max pool; stages 2-4: strided 3x3 conv and 1x1 downsample conv each.
    "resnet18": {"EQ001": 1, "EQ002": 7},
    "resnet50": {"EQ001": 1, "EQ002": 7},
    # conv 11x11/4, three 3x3/2 max pools, Linear(256*6*6) on the flattened 6x6 map.
    "alexnet": {"EQ001": 3, "EQ002": 1, "EQ008": 1},
    # five 2x2/2 max pools (even kernels, so five EQ011 too), Linear(512*7*7).
    "vgg16": {"EQ001": 5, "EQ008": 1, "EQ011": 5},
    # conv0 7x7/2, pool0 3x3/2, three transitions with AvgPool2d(2, 2).
    "densenet121": {"EQ001": 1, "EQ002": 1, "EQ003": 3, "EQ011": 3},
    # stem 3x3/2 and four inverted-residual stages with stride 2 (strided depthwise convs).
    "mobilenet_v2": {"EQ002": 5},
    # 16x16/16 patchify conv, learned pos_embedding added to the tokens.
    "vit_b_16": {"EQ002": 1, "EQ009": 1, "EQ011": 1},
    # 4x4/4 stem and three 2x2/2 downsampling convs.
    "convnext_tiny": {"EQ002": 4, "EQ011": 4},
    # four max pools (two nn.MaxPool2d, two F.max_pool2d in InceptionB/D); five strided convs.
    "inception_v3": {"EQ001": 4, "EQ002": 5},
    # 4x4/4 patch embedding; three patch mergings, each x[..., i::2, j::2, :] four times.
    "swin_t": {"EQ002": 1, "EQ005": 12, "EQ011": 1},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_counts(name):
    assert counts(lint_model(build(name))) == EXPECTED[name]


def test_resnet18_findings_name_layers_and_lines():
    report = lint_model(build("resnet18"))
    by_name = {f.qualname: f for f in report.findings}
    assert set(by_name) == {"conv1", "maxpool", "layer2.0.conv1", "layer2.0.downsample.0", "layer3.0.conv1",
                            "layer3.0.downsample.0", "layer4.0.conv1", "layer4.0.downsample.0"}
    source = open(by_name["maxpool"].file).read().splitlines()
    assert "self.maxpool = nn.MaxPool2d" in source[by_name["maxpool"].line - 1]
    assert "self.conv1 = conv3x3(inplanes, planes, stride)" in source[by_name["layer2.0.conv1"].line - 1]


@pytest.mark.parametrize(
    "name, qualname, text",
    [
        # a torchvision building block (a Sequential subclass): the line that configured it
        ("mobilenet_v2", "features.0.0", "Conv2dNormActivation(3, input_channel, stride=2"),
        # the branch that builds the layer, not an earlier `self.conv_proj = seq_proj`
        ("vit_b_16", "conv_proj", "self.conv_proj = nn.Conv2d("),
        # the k-th nn.MaxPool2d call in an nn.Sequential literal
        ("alexnet", "features.12", "nn.MaxPool2d(kernel_size=3, stride=2)"),
        # a functional call in a submodule's forward
        ("inception_v3", "Mixed_6a", "F.max_pool2d(x, kernel_size=3, stride=2)"),
    ],
)
def test_source_locations_in_library_models(name, qualname, text):
    [finding] = [f for f in lint_model(build(name)).findings if f.qualname == qualname and f.code < "EQ011"]
    assert text in open(finding.file).read().splitlines()[finding.line - 1]


@pytest.mark.parametrize("name", models.list_models(module=models.segmentation))
def test_segmentation_models_produce_a_report(name):
    report = lint_model(build(name, weights_backbone=None), (1, 3, 128, 128))
    assert report.errors == [] and report.trace == "fx"
    assert "EQ002" in counts(report)
    assert "EQ004" not in counts(report)  # their interpolations upsample


@pytest.mark.parametrize("name", models.list_models(module=models.detection))
def test_detection_models_fall_back_and_produce_a_report(name):
    report = lint_model(build(name, weights_backbone=None), (1, 3, 224, 224))
    assert report.errors == []
    assert report.trace == "hierarchical" and 0.5 < report.coverage < 1
    assert any(f.code == "EQ002" and f.qualname.startswith("backbone.") for f in report.findings)


@pytest.mark.parametrize("name", models.list_models(module=models.video))
def test_video_models_produce_a_report(name):
    # MViT and S3D need 224x224 frames; the 3-d convs are seen as 3-d.
    shape = (1, 3, 16, 224, 224) if name.startswith(("mvit", "s3d")) else (1, 3, 8, 112, 112)
    report = lint_model(build(name), shape)
    assert report.errors == [] and report.trace == "fx"
    assert any(f.code == "EQ002" and "Conv3d" in f.op for f in report.findings)


@pytest.mark.parametrize("name", models.list_models(module=models.optical_flow))
def test_optical_flow_models_fall_back_and_read_the_untraceable_forward(name):
    frames = (torch.empty(1, 3, 128, 128, device="meta"), torch.empty(1, 3, 128, 128, device="meta"))
    report = lint_model(build(name), frames)
    assert report.trace == "hierarchical" and report.errors == []
    codes = {(f.code, f.op) for f in report.findings}
    assert ("EQ002", "nn.Conv2d") in codes  # the strided feature and context encoders
    assert ("EQ003", "F.avg_pool2d") in codes  # the correlation pyramid, built in RAFT.forward


# ------------------------------------------------------------------------------------ timm

TIMM = {
    # BlurPool2d after stride-1 convs and max pool; the stem conv and 1x1 downsample convs remain.
    "resnetblur50": {"EQ002": 4},
    "resnet18": {"EQ001": 1, "EQ002": 7},
    "vit_small_patch16_224": {"EQ002": 1, "EQ009": 1, "EQ011": 1},
    "efficientnet_b0": {"EQ002": 5},
}


@pytest.mark.parametrize("name", sorted(TIMM))
def test_timm_models(name):
    timm = require("timm")
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    report = lint_model(model, (1, 3, 224, 224))
    assert report.errors == [] and report.trace == "fx"
    assert counts(report) == TIMM[name]


# ------------------------------------------------------------------ built as equiv-lint builds them


def _empty(factory):
    from pytest_equivariance.lint.empty import build_empty

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = build_empty(factory)
    assert built.empty, built.note
    return built.model


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_counts_with_empty_weights(name):
    # The command line's build: no weight initialised, large weights without storage.
    model = _empty(lambda: models.get_model(name, weights=None))
    assert all(p.is_meta for p in model.parameters() if p.numel() > (1 << 16) and p.shape[1:2] != (1,))
    assert counts(lint_model(model)) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(TIMM))
def test_timm_counts_with_empty_weights(name):
    # resnetblur50's frozen BlurPool2d filters are read by value: they must stay real.
    timm = require("timm")
    model = _empty(lambda: timm.create_model(name, pretrained=False))
    assert counts(lint_model(model, (1, 3, 224, 224))) == TIMM[name]


def test_regnet_builds_with_empty_weights_without_help():
    # RegNet computes block widths with .tolist() while it is built: real tensors, so no workaround.
    model = _empty(lambda: models.regnet_y_400mf(weights=None))
    assert lint_model(model).errors == []

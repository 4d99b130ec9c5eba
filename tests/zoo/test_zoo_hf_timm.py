"""Zoo tier: Hugging Face transformers vision backbones and a seeded sample of timm architectures.

Every model is built from its default config with random weights (never downloaded ones), with
empty weights where it can (``lint/empty``), and must lint without a target error: a failed target
in pre-commit blocks every commit of its users.
"""

from __future__ import annotations

import inspect
import random
import warnings

import pytest
import torch

from optional import require
from pytest_equivariance import antialias, check_shift_invariant, lint_model
from pytest_equivariance.cli import main
from pytest_equivariance.lint.empty import build_empty

pytestmark = pytest.mark.zoo

#: The size of the timm sample and the seed that picks it from timm.list_models().
TIMM_SAMPLE, TIMM_SEED = 100, 0


def _transformers():
    return require("transformers")


def _timm():
    return require("timm")


def hf_vision_backbones():
    """Return ``{model_type: build}`` for every image-classification architecture whose base model
    ``AutoModel`` builds from its default config and whose forward takes ``pixel_values``.

    Multimodal types (CLIP, SigLIP: ``input_ids`` first), types that need an extra library (dinat
    needs natten) or that ``AutoModel`` does not map are left out; the test prints which.
    """
    transformers = _transformers()
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    builds, left_out = {}, []
    for model_type in sorted(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES):
        try:
            config = transformers.AutoConfig.for_model(model_type)
            model = build_empty(lambda: transformers.AutoModel.from_config(config)).model
        except Exception as exc:  # noqa: BLE001 - an architecture this environment cannot build
            left_out.append(f"{model_type} ({type(exc).__name__})")
            continue
        if next(iter(inspect.signature(model.forward).parameters), None) != "pixel_values":
            left_out.append(f"{model_type} (not a vision backbone)")
            continue
        builds[model_type] = model
    return builds, left_out


def test_every_hf_vision_backbone_lints_without_a_target_error():
    builds, left_out = hf_vision_backbones()
    assert len(builds) >= 30, left_out
    failed = {}
    for model_type, model in builds.items():
        report = lint_model(model)  # the size the config declares (config.image_size, num_channels)
        if report.errors:
            failed[model_type] = report.errors[0]
        channels = getattr(model.config, "num_channels", None)
        assert report.input_shape is not None and report.input_shape[1] == (channels or report.input_shape[1])
    assert failed == {}
    print(f"{len(builds)} backbones linted; left out: {', '.join(left_out)}")


EIGHT = {  # model type -> findings at 1x3x64x64 with the default rules
    "resnet": 8, "regnet": 9, "convnext": 8, "segformer": 16, "swin": 8, "mobilevit": 5, "poolformer": 4,
    "efficientnet": 10,
}


def test_the_eight_hf_backbones_exit_1_with_findings_and_no_target_error(capsys):
    _transformers()
    targets = [f"transformers:{t}" for t in EIGHT]
    code = main([*targets, "--input-shape", "1,3,64,64", "--format", "json", "--no-cache"])
    out, err = capsys.readouterr()
    import json

    models = json.loads(out)["models"]
    assert code == 1 and err == ""
    assert {m["target"]: len(m["findings"]) for m in models} == {t: n for t, n in zip(targets, EIGHT.values())}
    assert all(m["errors"] == [] for m in models)
    resnet = models[0]["findings"]
    assert any(f["file"] and f["file"].endswith("modeling_resnet.py") for f in resnet)


def test_hf_resnet_fails_the_shift_check_and_antialias_loads_strictly_and_lowers_the_error():
    transformers = _transformers()
    torch.manual_seed(0)
    model = transformers.ResNetModel(transformers.ResNetConfig()).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    shifts = [(0, 1), (1, 0), (1, 1)]
    before = check_shift_invariant(model, x, shifts=shifts, localize=False)
    assert not before.passed and before.trials[0].leaf  # the ModelOutput is followed to its tensors
    fixed = antialias(model, example_input=(1, 3, 64, 64)).eval()
    assert len(fixed.antialias_report.changes) == 8 and fixed.antialias_report.skipped == []
    result = fixed.load_state_dict(model.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    after = check_shift_invariant(fixed, x, shifts=shifts, localize=False)
    assert after.worst_error < before.worst_error / 3


def timm_sample() -> list[str]:
    timm = _timm()
    return random.Random(TIMM_SEED).sample(sorted(timm.list_models()), TIMM_SAMPLE)


def test_a_seeded_sample_of_timm_architectures_lints_at_native_and_default_size():
    timm = _timm()
    failed = {}
    for name in timm_sample():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm's own deprecation notices for old names
            model = build_empty(lambda: timm.create_model(name, pretrained=False)).model
        native = (1, *model.pretrained_cfg["input_size"])
        for shape in (native, None):
            report = lint_model(model, shape)
            if report.errors:
                failed[(name, shape)] = report.errors[0]
            elif shape is None:
                assert report.input_shape == native  # the default is the size the model declares
    assert failed == {}


# resnet18: conv1, maxpool, and conv1 + downsample of layer2-4; convnext_atto: stem + 3 downsamples;
# efficientnet_b0: conv_stem and the 4 strided depthwise convs.
@pytest.mark.parametrize(("name", "findings"), [("resnet18", 8), ("convnext_atto", 4), ("efficientnet_b0", 5)])
def test_timm_models_by_name_lint_and_antialias_loads_strictly(capsys, name, findings):
    timm = _timm()
    code = main([f"timm:{name}", "--format", "json", "--no-cache", "--select", "EQ001,EQ002,EQ003"])
    import json

    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert code == 1 and model["errors"] == [] and len(model["findings"]) == findings
    torch.manual_seed(0)
    plain = timm.create_model(name, pretrained=False).eval()
    fixed = antialias(plain, example_input=(1, 3, 64, 64))
    assert fixed.antialias_report.skipped == []
    fixed.load_state_dict(plain.state_dict(), strict=True)
    assert lint_model(fixed, (1, 3, 64, 64), select=["EQ001", "EQ002", "EQ003"]).findings == []


def test_a_model_that_declares_its_size_is_linted_at_it():
    timm = _timm()
    model = build_empty(lambda: timm.create_model("vit_base_patch16_384", pretrained=False)).model
    report = lint_model(model)
    assert report.errors == [] and report.input_shape == (1, 3, 384, 384)


def test_real_device_tensors_made_in_forward_meet_meta_ones_with_a_note():
    timm = _timm()
    model = build_empty(lambda: timm.create_model("vit_base_patch16_dinov3_qkvb", pretrained=False)).model
    report = lint_model(model)
    assert report.errors == [] and report.input_shape == (1, 3, 256, 256)
    assert any("made on a real device" in note for note in report.notes)

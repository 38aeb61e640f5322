"""The model's own defaults (``sprint_desktop.json``): steps, refinement steps and size, read by both
backends, the CLI and the app, with fallbacks for a model that does not say or says nonsense."""

from __future__ import annotations

import json
import shutil

import pytest

from sprint_desktop.cli import main
from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.core.metadata import read_png_params
from sprint_desktop.core.paths import project_root
from sprint_desktop.formats.model_folder import (
    FALLBACK_REFINE_STEPS,
    FALLBACK_STEPS,
    ModelDefaults,
    model_defaults,
    read_model_defaults,
)


def test_the_embedded_model_asks_for_one_step_at_64_pixels():
    defaults = read_model_defaults(project_root() / "models" / "sprint-shapes")
    assert defaults == ModelDefaults(steps=1, refine_steps=FALLBACK_REFINE_STEPS, size=(64, 64))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, ModelDefaults(FALLBACK_STEPS, FALLBACK_REFINE_STEPS, None)),
        ({"default_steps": 3, "refine_steps": 2, "default_size": [96, 64]}, ModelDefaults(3, 2, (96, 64))),
        ({"default_steps": 0, "refine_steps": 9}, ModelDefaults(FALLBACK_STEPS, FALLBACK_REFINE_STEPS, None)),
        ({"default_steps": "1", "refine_steps": True}, ModelDefaults(FALLBACK_STEPS, FALLBACK_REFINE_STEPS)),
        ({"default_size": [64]}, ModelDefaults()),
        ({"default_size": [64, -1]}, ModelDefaults()),
    ],
)
def test_out_of_range_values_fall_back(settings, expected):
    assert model_defaults(settings) == expected


def test_a_broken_settings_file_names_itself(tmp_path):
    (tmp_path / "sprint_desktop.json").write_text("{oops")
    with pytest.raises(ModelLoadError, match="sprint_desktop.json is not valid JSON"):
        read_model_defaults(tmp_path)


@pytest.fixture(scope="module")
def one_step_model(tiny_model_dir, tmp_path_factory):
    """The tiny model saying: 1 step by default, refine at 3, 32x32."""
    model = tmp_path_factory.mktemp("one-step") / "tiny-one-step"
    shutil.copytree(tiny_model_dir, model)
    settings = {"default_steps": 1, "refine_steps": 3, "default_size": [32, 32]}
    (model / "sprint_desktop.json").write_text(json.dumps(settings))
    return model


def test_the_torch_engine_reports_the_models_defaults(one_step_model, tiny_engine):
    from sprint_desktop.engine.torch_backend import TorchEngine

    info = TorchEngine(one_step_model, device="cpu").load()
    assert (info.default_steps, info.refine_steps, info.default_width, info.default_height) == (1, 3, 32, 32)
    plain = tiny_engine.info  # no sprint_desktop.json: the fallbacks
    assert (plain.default_steps, plain.refine_steps) == (FALLBACK_STEPS, FALLBACK_REFINE_STEPS)


def test_the_onnx_engine_reports_the_models_defaults(one_step_model, shipped_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from sprint_desktop.engine.onnx_backend import OnnxEngine

    export = shipped_model_dir / "onnx"  # the tiny model's graphs; the defaults come from the folder
    info = OnnxEngine(export, device="cpu", model_path=one_step_model).load()
    assert (info.default_steps, info.refine_steps) == (1, 3)
    # Without model_path, a shipped export reads the model folder it is in.
    model = tmp_path / "shipped"
    shutil.copytree(shipped_model_dir, model)
    (model / "sprint_desktop.json").write_text(json.dumps({"default_steps": 3}))
    assert OnnxEngine(model / "onnx", device="cpu").load().default_steps == 3


def test_the_cli_uses_the_models_default_steps(one_step_model, tmp_path):
    out = tmp_path / "x.png"
    args = ["generate", "a red circle", "--model", str(one_step_model), "--seed", "1", "--backend", "torch"]
    assert main([*args, "-o", str(out)]) == 0
    assert read_png_params(out)["steps"] == 1
    assert main([*args, "--steps", "2", "-o", str(out)]) == 0
    assert read_png_params(out)["steps"] == 2

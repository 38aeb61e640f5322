"""Broken model folders give a clear `ModelLoadError`, never a crash deep in a loader."""

from __future__ import annotations

import json
import shutil

import pytest

from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.engine.torch_backend import TorchEngine
from sprint_desktop.formats.model_folder import inspect_model_folder


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def _load(path):
    TorchEngine(path, device="cpu").load()


def test_good_folder_passes(model_copy):
    folder = inspect_model_folder(model_copy)
    assert folder.pipeline_class == "SanaSprintPipeline"
    assert folder.components["transformer"] == ("diffusers", "SanaTransformer2DModel")


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model folder not found"):
        _load(tmp_path / "nope")


def test_missing_model_index(model_copy):
    (model_copy / "model_index.json").unlink()
    with pytest.raises(ModelLoadError, match="model_index.json is missing"):
        _load(model_copy)


def test_truncated_safetensors(model_copy):
    weights = model_copy / "transformer" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupt.*Download it again"):
        _load(model_copy)


def test_missing_safetensors(model_copy):
    (model_copy / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights in .*vae"):
        _load(model_copy)


def test_tiny_garbage_file(model_copy):
    (model_copy / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"abc")
    with pytest.raises(ModelLoadError, match="truncated"):
        _load(model_copy)


def test_pickle_weights_refused(model_copy):
    import torch

    folder = model_copy / "transformer"
    weights = folder / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(weights), folder / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelLoadError, match="only pickle weights.*safetensors only"):
        _load(model_copy)


def test_remote_code_component_refused(model_copy):
    index = json.loads((model_copy / "model_index.json").read_text())
    index["transformer"] = ["my_custom_module", "EvilTransformer"]
    (model_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="remote code is never run"):
        _load(model_copy)


def test_wrong_pipeline_class(model_copy):
    index = json.loads((model_copy / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (model_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="runs SanaSprintPipeline models"):
        _load(model_copy)


def test_corrupt_model_index(model_copy):
    (model_copy / "model_index.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        _load(model_copy)


def test_weights_that_do_not_match_the_config(model_copy):
    config_path = model_copy / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["num_layers"] = 3  # the weights hold 2 layers
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="transformer weights do not match its config.json: 23 tensor"):
        _load(model_copy)


def test_weights_from_another_architecture(model_copy):
    config_path = model_copy / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config["decoder_layers_per_block"] = [1, 0]
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="vae weights do not match.*has no place for"):
        _load(model_copy)

"""Issue #13 item 7: NaN or Inf in the weights gives a clear error, not a silent black image."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.base import NonFiniteOutputError
from sprint_desktop.engine.torch_backend import TorchEngine

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load_naming_the_tensor(model_copy, value):
    tensors = load_file(model_copy / WEIGHTS)
    name = sorted(k for k in tensors if k.endswith("proj_out.weight"))[0]
    tensors[name][0, 0] = value
    save_file(tensors, model_copy / WEIGHTS)
    with pytest.raises(ModelLoadError, match=r"transformer weights .* NaN or infinite .*proj_out\.weight"):
        TorchEngine(model_copy, device="cpu").load()


def test_a_non_finite_result_is_reported_not_shown_as_a_black_image(tiny_model_dir):
    engine = TorchEngine(tiny_model_dir, device="cpu")
    engine.load()
    request = GenerateRequest("a red circle", steps=1, seed=0)
    assert engine.generate(request).image.shape == (32, 32, 3)  # a healthy model first
    with torch.no_grad():
        engine.transformer.proj_out.weight[0, 0] = float("nan")  # damaged after the load check
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite values in its latents"):
        engine.generate(request)

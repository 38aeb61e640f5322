"""The ControlNet through ONNX: its export, the cache's fingerprint, and parity with PyTorch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.core.noise import draw_noise
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.onnx_backend import OnnxEngine
from sprint_desktop.export.cache import find_export, is_complete, model_fingerprint, read_manifest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

PROMPT = "a red square above a blue circle"


def _sketch():
    img = np.full((32, 32, 3), 255, np.uint8)
    img[6:26, 6] = img[6:26, 25] = img[6, 6:26] = img[25, 6:26] = 20
    return img


def _noise(engine, request):
    return np.stack(
        [draw_noise(s, engine.latent_shape(request), request.steps) for s in request.seeds], axis=1
    )


def _torch_images(engine, request, noise):
    with torch.inference_mode():
        embeds, mask, _, _ = engine.encode_prompt(request.prompt)
        return engine.decode(engine.denoise(engine.resolve(request), embeds, mask, noise))


def _onnx_images(engine, request, noise):
    embeds, mask, _, _ = engine.encode_prompt(request.prompt)
    return engine.decode(engine.denoise(engine.resolve(request), embeds, mask, noise))


def test_controlnet_is_exported_with_the_residuals_the_transformer_uses(controlnet_model):
    export = controlnet_model.export
    assert is_complete(export, verify_checksums=True)
    assert sorted(p.name for p in export.glob("*.onnx")) == [
        "controlnet.onnx",
        "text_encoder.onnx",
        "transformer.onnx",
        "vae_decoder.onnx",
        "vae_encoder.onnx",
    ]
    onnx = OnnxEngine(export, device="cpu")
    assert onnx.info.control_mode == "controlnet"
    # The tiny transformer has 2 blocks: diffusers adds residual j after block j + 1, so only the
    # first of the ControlNet's 2 residuals is used, and only it is exported.
    assert onnx.residual_names == ["residual_0"]
    assert [o.name for o in onnx.sessions["controlnet"].get_outputs()] == ["residual_0"]


def test_an_export_without_the_controlnet_is_not_reused_once_it_is_added(controlnet_model, export, cache):
    # Before the ControlNet was added the copy had the tiny model's files: its export was shared.
    assert controlnet_model.export_before == export
    assert not (export / "controlnet.onnx").exists()
    assert controlnet_model.export != export
    assert find_export(controlnet_model.path, root=cache) == controlnet_model.export
    assert read_manifest(controlnet_model.export)["control_mode"] == "controlnet"


def test_fingerprint_covers_the_controlnet_and_skips_a_shipped_export(tmp_path, controlnet_model):
    model = tmp_path / "m"
    shutil.copytree(controlnet_model.path, model)
    with_cn = model_fingerprint(model)
    (model / "onnx").mkdir()
    (model / "onnx" / "manifest.json").write_text("{}")
    assert model_fingerprint(model) == with_cn  # an export inside the folder is not the model
    cfg = model / "controlnet" / "config.json"
    cfg.write_text(cfg.read_text().replace('"num_layers": 2', '"num_layers": 1'))
    assert model_fingerprint(model) != with_cn
    shutil.rmtree(model / "controlnet")
    assert model_fingerprint(model) != with_cn


def test_an_export_of_an_older_format_is_neither_found_nor_loaded(controlnet_model, tmp_path):
    old = tmp_path / f"{controlnet_model.path.name}-fp32-old"
    shutil.copytree(controlnet_model.export, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["format"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert find_export(controlnet_model.path, root=tmp_path) is None
    with pytest.raises(ModelLoadError, match="another version of Sprint Desktop"):
        OnnxEngine(old, device="cpu").load()


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0])
def test_onnx_controlnet_matches_pytorch(controlnet_model, controlnet_engine, steps, scale):
    """Same noise, same sketch: the images agree to float error (the issue's fp32 target is 1e-3 on
    [0, 1] pixels; we see ~5e-7), and the ControlNet really changes them (>0.1) when scale > 0."""
    onnx = OnnxEngine(controlnet_model.export, device="cpu")
    request = GenerateRequest(PROMPT, steps=steps, seed=5, control_image=_sketch(), control_scale=scale)
    noise = _noise(controlnet_engine, controlnet_engine.resolve(request))
    ref = _torch_images(controlnet_engine, request, noise)
    out = _onnx_images(onnx, request, noise)
    assert out.shape == ref.shape == (1, 32, 32, 3)
    assert np.abs(out - ref).max() < 1e-3
    without = _onnx_images(onnx, GenerateRequest(PROMPT, steps=steps, seed=5), noise)
    if scale == 0:
        # Residuals times 0 and the zero residuals of a request without a sketch add the same nothing.
        np.testing.assert_array_equal(out, without)
    else:
        assert np.abs(out - without).max() > 0.1
    a, b = onnx.generate(request), controlnet_engine.generate(request)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1


def test_request_without_sketch_matches_pytorch_on_a_controlnet_model(controlnet_model, controlnet_engine):
    onnx = OnnxEngine(controlnet_model.export, device="cpu")
    request = GenerateRequest(PROMPT, steps=2, seed=8)
    noise = _noise(controlnet_engine, controlnet_engine.resolve(request))
    ref = _torch_images(controlnet_engine, request, noise)
    assert np.abs(_onnx_images(onnx, request, noise) - ref).max() < 1e-3


def test_sketch_latent_is_encoded_once(controlnet_model):
    onnx = OnnxEngine(controlnet_model.export, device="cpu")
    request = GenerateRequest(PROMPT, steps=1, seed=2, control_image=_sketch(), control_scale=0.7)
    a = onnx.generate(request)
    b = onnx.generate(GenerateRequest(PROMPT, steps=1, seed=2, control_image=_sketch(), control_scale=0.7))
    np.testing.assert_array_equal(a.image, b.image)
    assert (onnx.control_cache.misses, onnx.control_cache.hits) == (1, 1)
    onnx.generate(GenerateRequest(PROMPT, steps=1, seed=2, control_image=255 - _sketch()))
    assert onnx.control_cache.misses == 2

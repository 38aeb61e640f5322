"""The Sprint ControlNet: zero-init equality, strict loading, the engine path, bad control images."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.controlnet import SprintControlNetModel
from sprint_desktop.engine.torch_backend import TorchEngine


def _sketch(size=32):
    img = np.full((size, size, 3), 255, np.uint8)
    a, b = size // 5, size - size // 5
    img[a:b, a] = img[a:b, b - 1] = img[a, a:b] = img[b - 1, a:b] = 20
    return img


@pytest.fixture
def with_controlnet(tiny_model_dir, tmp_path):
    """A copy of the tiny model that ships a zero-initialised ControlNet (2 blocks)."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    engine = TorchEngine(tiny_model_dir, device="cpu")
    engine.load()
    SprintControlNetModel.from_transformer(engine.transformer, 2).save_pretrained(dst / "controlnet")
    return dst


def test_zero_initialised_controlnet_leaves_the_image_unchanged(with_controlnet, tiny_engine):
    engine = TorchEngine(with_controlnet, device="cpu")
    assert engine.info.control_mode == "controlnet"
    plain = tiny_engine.generate(GenerateRequest("a red square", steps=2, seed=3))
    for steps in (1, 2, 4):
        controlled = engine.generate(
            GenerateRequest("a red square", steps=steps, seed=3, control_image=_sketch())
        )
        reference = tiny_engine.generate(GenerateRequest("a red square", steps=steps, seed=3))
        np.testing.assert_array_equal(controlled.image, reference.image)
    assert plain.image.shape == (32, 32, 3)


def test_trained_controlnet_changes_the_image_and_caches_the_sketch(with_controlnet):
    engine = TorchEngine(with_controlnet, device="cpu")
    engine.load()
    torch.manual_seed(0)
    for block in engine.controlnet.controlnet_blocks:
        torch.nn.init.normal_(block.weight, std=0.5)
    torch.nn.init.normal_(engine.controlnet.input_block.weight, std=0.5)
    calls = []
    engine.vae.encoder.register_forward_hook(lambda *a: calls.append(1))
    req = GenerateRequest("a red square", steps=1, seed=3, control_image=_sketch())
    a, b = engine.generate(req), engine.generate(req)
    np.testing.assert_array_equal(a.image, b.image)
    assert len(calls) == 1
    plain = engine.generate(GenerateRequest("a red square", steps=1, seed=3))
    assert not np.array_equal(a.image, plain.image)
    weaker = engine.generate(
        GenerateRequest("a red square", steps=1, seed=3, control_image=_sketch(), control_scale=0.0)
    )
    np.testing.assert_array_equal(weaker.image, plain.image)


def test_the_sketch_conditioning_is_computed_once_per_sketch_not_per_step_or_request(with_controlnet):
    engine = TorchEngine(with_controlnet, device="cpu")
    engine.load()
    torch.manual_seed(1)
    for block in engine.controlnet.controlnet_blocks:
        torch.nn.init.normal_(block.weight, std=0.5)
    torch.nn.init.normal_(engine.controlnet.input_block.weight, std=0.5)
    encodes, embeds = [], []
    engine.vae.encoder.register_forward_hook(lambda *a: encodes.append(1))
    engine.controlnet.cond_embed.register_forward_hook(lambda *a: embeds.append(1))
    sketch = _sketch()
    four = engine.generate(GenerateRequest("a red square", steps=4, seed=3, control_image=sketch))
    assert (len(encodes), len(embeds)) == (1, 1)  # 4 steps, one conditioning
    for seed in (4, 5):  # the same sketch again (a refinement, a retry, a new seed): none at all
        engine.generate(GenerateRequest("a red square", steps=2, seed=seed, control_image=sketch))
    assert (len(encodes), len(embeds)) == (1, 1)
    other = sketch.copy()
    other[3, 3] = 0
    engine.generate(GenerateRequest("a red square", steps=1, seed=3, control_image=other))
    assert (len(encodes), len(embeds)) == (2, 2)  # a changed sketch: once more

    # The cached conditioning gives the image that computing it inside every step gave.
    fresh = TorchEngine(with_controlnet, device="cpu")
    fresh.load()
    fresh.controlnet.load_state_dict(engine.controlnet.state_dict())
    fresh.control_embedding = lambda request: torch.zeros(1, 1, 1)  # unused: embedded at every step

    original = fresh.controlnet.forward

    def per_step(hidden, text, t, controlnet_cond=None, cond_embedding=None, **kw):
        latent = (fresh.encode_control(request) / fresh.sigma_d).to(hidden.dtype)
        return original(hidden, text, t, controlnet_cond=latent, **kw)

    request = fresh.resolve(GenerateRequest("a red square", steps=4, seed=3, control_image=sketch))
    fresh.controlnet.forward = per_step
    np.testing.assert_array_equal(fresh.generate(request).image, four.image)


def test_controlnet_of_another_shape_is_refused(with_controlnet):
    cfg_path = with_controlnet / "controlnet" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["num_layers"] = 1
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="controlnet weights do not match"):
        TorchEngine(with_controlnet, device="cpu").load()


def test_from_transformer_copies_blocks_and_zero_inits_projections(tiny_engine):
    cn = SprintControlNetModel.from_transformer(tiny_engine.transformer, 1)
    ref = tiny_engine.transformer.transformer_blocks[0].state_dict()
    for k, v in cn.transformer_blocks[0].state_dict().items():
        torch.testing.assert_close(v, ref[k])
    assert all(float(p.abs().max()) == 0 for p in cn.controlnet_blocks.parameters())
    assert float(cn.input_block.weight.abs().max()) == 0
    with pytest.raises(ValueError, match="num_layers must be 1-2"):
        SprintControlNetModel.from_transformer(tiny_engine.transformer, 3)

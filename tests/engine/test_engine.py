"""The PyTorch backend through its public interface, on a tiny real model loaded from disk."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sprint_desktop.core.cancel import CancelToken
from sprint_desktop.core.errors import GenerationCancelled, InvalidRequestError
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.torch_backend import TorchEngine


def test_info_describes_the_model(tiny_engine, tiny_model_dir):
    info = tiny_engine.info
    assert info.path == str(tiny_model_dir)
    assert (info.backend, info.device, info.dtype) == ("torch", "cpu", "float32")
    assert (info.default_width, info.default_height, info.size_multiple, info.latent_channels) == (
        32,
        32,
        2,
        4,
    )


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_same_request_same_pixels(tiny_engine, steps):
    req = GenerateRequest("a small blue triangle", steps=steps, seed=42)
    a = tiny_engine.generate(req)
    b = tiny_engine.generate(req)
    assert a.image.dtype == np.uint8 and a.image.shape == (32, 32, 3)
    np.testing.assert_array_equal(a.image, b.image)
    c = tiny_engine.generate(GenerateRequest("a small blue triangle", steps=steps, seed=43))
    assert not np.array_equal(a.image, c.image)


def test_fresh_engine_reproduces_pixels(tiny_engine, tiny_model_dir):
    req = GenerateRequest("two red squares", steps=2, seed=9)
    other = TorchEngine(tiny_model_dir, device="cpu", prompt_cache_size=0)
    np.testing.assert_array_equal(tiny_engine.generate(req).image, other.generate(req).image)


def test_result_carries_resolved_request_and_timings(tiny_engine):
    r = tiny_engine.generate(GenerateRequest("a red circle", steps=1, seed=1))
    assert (r.request.width, r.request.height) == (32, 32)
    assert r.request.backend == "torch" and r.request.model == tiny_engine.info.name
    t = r.timings
    assert min(t.encode_ms, t.denoise_ms, t.decode_ms) >= 0
    assert t.total_ms == pytest.approx(t.encode_ms + t.denoise_ms + t.decode_ms, rel=0.05, abs=0.5)


def test_batch_image_i_equals_single_request_with_seed_plus_i(tiny_engine):
    batch = tiny_engine.generate(GenerateRequest("a green cross", steps=2, seed=100, batch_size=3))
    assert len(batch.images) == 3
    for i in range(3):
        single = tiny_engine.generate(GenerateRequest("a green cross", steps=2, seed=100 + i))
        np.testing.assert_allclose(batch.images[i].astype(int), single.image.astype(int), atol=1)
    assert batch.metadata(2)["seed"] == 102


def test_non_square_and_custom_sizes(tiny_engine):
    r = tiny_engine.generate(GenerateRequest("a cyan circle", steps=1, width=48, height=16))
    assert r.image.shape == (16, 48, 3)


def test_size_not_a_multiple_is_a_clear_error(tiny_engine):
    with pytest.raises(
        InvalidRequestError, match=r"width must be a multiple of 2 for this model, got 33 \(try 32 or 34\)"
    ):
        tiny_engine.generate(GenerateRequest("a red circle", width=33, height=32))


@pytest.mark.parametrize(
    "kwargs",
    [dict(steps=0), dict(steps=5), dict(prompt=""), dict(prompt="y " * 50_000), dict(guidance=float("nan"))],
)
def test_bad_requests_raise_and_engine_keeps_working(tiny_engine, kwargs):
    base = dict(prompt="a red circle")
    base.update(kwargs)
    with pytest.raises(InvalidRequestError):
        tiny_engine.generate(GenerateRequest(**base))
    assert tiny_engine.generate(GenerateRequest("a red circle", steps=1)).image.shape == (32, 32, 3)


def test_prompt_cache_skips_the_text_encoder(tiny_model_dir):
    engine = TorchEngine(tiny_model_dir, device="cpu", prompt_cache_size=2)
    engine.load()
    calls = []
    engine.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    first = engine.generate(GenerateRequest("a black square", steps=1, seed=1))
    assert not first.prompt_cache_hit and calls
    before = len(calls)
    second = engine.generate(GenerateRequest("a black square", steps=2, seed=2))
    assert second.prompt_cache_hit and len(calls) == before
    # Case and surrounding spaces do not change the encoding (the stock pipeline lower-cases too).
    assert engine.generate(GenerateRequest("  A Black Square ", steps=1)).prompt_cache_hit
    assert len(calls) == before
    engine.generate(GenerateRequest("a red circle", steps=1))
    engine.generate(GenerateRequest("a blue cross", steps=1))  # evicts "a black square" (capacity 2)
    assert len(calls) == before + 2
    assert not engine.generate(GenerateRequest("a black square", steps=1)).prompt_cache_hit
    assert len(calls) == before + 3
    assert engine.prompt_cache.hits == 2


def test_instruction_prefix_runs_once(tiny_model_dir):
    """A new prompt runs the text encoder over its own tokens only; the instruction's states are reused."""
    engine = TorchEngine(tiny_model_dir, device="cpu")
    engine.load()
    assert engine.prefix_cache_active
    lengths = []
    engine.text_encoder.register_forward_pre_hook(
        lambda mod, args, kwargs: lengths.append((args[0] if args else kwargs["input_ids"]).shape[1]),
        with_kwargs=True,
    )
    engine.generate(GenerateRequest("a red circle", steps=1))
    engine.generate(GenerateRequest("two blue crosses", steps=1))
    prefix = len(engine._chi_ids)
    # First request: the prefix once, then the prompt's tokens; second request: the prompt's tokens only.
    assert lengths[0] >= prefix - 1 and max(lengths[1:]) <= 4 and len(lengths) == 3


def test_prefix_cache_does_not_change_the_image(tiny_model_dir):
    with_cache = TorchEngine(tiny_model_dir, device="cpu")
    without = TorchEngine(tiny_model_dir, device="cpu", prefix_cache=False)
    for prompt in ("a red circle left of a blue square", "three small yellow triangles"):
        req = GenerateRequest(prompt, steps=2, seed=4)
        e1, m1, _, _ = with_cache.encode_prompt(prompt)
        e2, m2, _, _ = without.encode_prompt(prompt)
        assert torch.equal(m1, m2)
        real = m1[0].bool()
        torch.testing.assert_close(e1[:, real], e2[:, real], atol=1e-5, rtol=0)
        a = with_cache.generate(req).image.astype(int)
        b = without.generate(req).image.astype(int)
        assert np.abs(a - b).max() <= 1


def test_cached_embedding_gives_identical_pixels(tiny_model_dir):
    engine = TorchEngine(tiny_model_dir, device="cpu")
    req = GenerateRequest("a purple circle", steps=2, seed=5)
    a = engine.generate(req)
    b = engine.generate(req)
    assert b.prompt_cache_hit
    np.testing.assert_array_equal(a.image, b.image)


def test_long_prompt_is_truncated_with_a_warning(tiny_engine):
    r = tiny_engine.generate(GenerateRequest("red " * 400, steps=1))
    assert any("longer than 300 tokens" in w for w in r.warnings)


def test_progress_reports_every_step(tiny_engine):
    events = []
    tiny_engine.generate(GenerateRequest("a red circle", steps=4), progress=events.append, request_id=7)
    stages = [(e.stage, e.step, e.total) for e in events]
    assert stages == [("encode", 0, 1), *[("denoise", i, 4) for i in range(5)], ("decode", 0, 1)]
    assert {e.request_id for e in events} == {7}


def test_cancel_between_steps(tiny_engine):
    token = CancelToken()

    def on_progress(p):
        if p.stage == "denoise" and p.step == 1:
            token.cancel()

    with pytest.raises(GenerationCancelled):
        tiny_engine.generate(GenerateRequest("a red circle", steps=4), progress=on_progress, cancel=token)
    # The engine is usable afterwards.
    assert tiny_engine.generate(GenerateRequest("a red circle", steps=1)).image.shape == (32, 32, 3)


def test_engine_cancel_from_another_thread(tiny_engine):
    started = threading.Event()
    errors = []

    def on_progress(p):
        if p.stage == "denoise" and p.step == 0:
            started.set()
            threading.Thread(target=tiny_engine.cancel).start()
            threading.Event().wait(0.2)

    try:
        tiny_engine.generate(GenerateRequest("a red circle", steps=4), progress=on_progress)
    except GenerationCancelled as exc:
        errors.append(exc)
    assert started.is_set() and errors


def test_custom_timesteps_equal_default_schedule(tiny_engine):
    a = tiny_engine.generate(GenerateRequest("a red circle", steps=2, seed=3))
    b = tiny_engine.generate(GenerateRequest("a red circle", steps=2, seed=3, timesteps=(1.5708, 1.3, 0.0)))
    c = tiny_engine.generate(GenerateRequest("a red circle", steps=2, seed=3, timesteps=(1.5708, 0.8, 0.0)))
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_guidance_changes_the_image(tiny_engine):
    a = tiny_engine.generate(GenerateRequest("a red circle", steps=1, seed=3, guidance=4.5))
    b = tiny_engine.generate(GenerateRequest("a red circle", steps=1, seed=3, guidance=0.0))
    assert not np.array_equal(a.image, b.image)


def _sketch():
    img = np.full((32, 32, 3), 255, np.uint8)
    img[8:24, 8] = img[8:24, 23] = img[8, 8:24] = img[23, 8:24] = 20
    return img


def test_sketch_img2img_is_deterministic_and_follows_the_sketch(tiny_model_dir):
    engine = TorchEngine(tiny_model_dir, device="cpu")
    assert engine.info.control_mode == "img2img"
    calls = []
    engine.load()
    engine.vae.encoder.register_forward_hook(lambda *a: calls.append(1))
    req = GenerateRequest("a red square", steps=2, seed=1, control_image=_sketch(), strength=0.7)
    a, b = engine.generate(req), engine.generate(req)
    np.testing.assert_array_equal(a.image, b.image)
    assert len(calls) == 1  # the sketch latent is cached by content
    plain = engine.generate(GenerateRequest("a red square", steps=2, seed=1))
    assert not np.array_equal(a.image, plain.image)
    # At a tiny strength the result is the sketch's own latent, decoded.
    faint = engine.generate(
        GenerateRequest("a red square", steps=1, seed=1, control_image=_sketch(), strength=1e-4)
    )
    x0 = engine.encode_control(engine.resolve(req))
    expected = (engine.decode(x0 / engine.sigma_d)[0] * 255).round()
    assert np.abs(faint.image.astype(float) - expected).max() <= 2
    assert faint.metadata()["strength"] == 1e-4 and "control_digest" in faint.metadata()


def test_sketch_of_another_size_is_resized(tiny_engine):
    big = np.kron(_sketch(), np.ones((2, 2, 1), np.uint8))
    r = tiny_engine.generate(GenerateRequest("a red square", steps=1, control_image=big))
    assert r.image.shape == (32, 32, 3)


@pytest.mark.parametrize("strength", [0.0, 1.5, float("nan")])
def test_bad_strength(tiny_engine, strength):
    with pytest.raises(InvalidRequestError, match="strength"):
        tiny_engine.generate(GenerateRequest("a red square", control_image=_sketch(), strength=strength))

"""Our sampling loop against diffusers' stock SanaSprintPipeline on the same model and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import SanaSprintPipeline

from sprint_desktop.core.request import GenerateRequest


@pytest.fixture(scope="module")
def stock(tiny_model_dir):
    pipe = SanaSprintPipeline.from_pretrained(tiny_model_dir, local_files_only=True, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _stock_images(stock, prompt, steps, z0, noise_seed, intermediate=1.3, batch=1):
    gen = torch.Generator("cpu").manual_seed(noise_seed)
    return stock(
        prompt=prompt,
        num_inference_steps=steps,
        intermediate_timesteps=intermediate if steps == 2 else None,
        guidance_scale=4.5,
        height=32,
        width=32,
        latents=torch.from_numpy(z0),
        generator=gen,
        use_resolution_binning=False,
        output_type="np",
        num_images_per_prompt=batch,
    ).images


def _our_noise(z0, steps, noise_seed):
    """The stock scheduler draws one re-noise per step from the generator; feed ours the same."""
    gen = torch.Generator("cpu").manual_seed(noise_seed)
    draws = [torch.randn(z0.shape, generator=gen).numpy() for _ in range(steps)]
    return np.stack([z0, *draws[: steps - 1]])


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_loop_matches_stock_pipeline(tiny_engine, stock, steps):
    z0 = np.random.default_rng(7).standard_normal((1, 4, 16, 16)).astype(np.float32)
    expected = _stock_images(stock, "a large red circle above a blue square", steps, z0, noise_seed=11)
    request = tiny_engine.resolve(GenerateRequest("a large red circle above a blue square", steps=steps))
    latents = tiny_engine.denoise(
        request, *tiny_engine.encode_prompt(request.prompt)[:2], _our_noise(z0, steps, 11)
    )
    ours = tiny_engine.decode(latents)
    assert ours.shape == expected.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    # The images are not trivially constant: the parity means something.
    assert expected.std() > 0.01


def test_batch_matches_stock_pipeline(tiny_engine, stock):
    z0 = np.random.default_rng(3).standard_normal((2, 4, 16, 16)).astype(np.float32)
    expected = _stock_images(stock, "two green crosses", 2, z0, noise_seed=5, batch=2)
    request = tiny_engine.resolve(GenerateRequest("two green crosses", steps=2, batch_size=2))
    latents = tiny_engine.denoise(
        request, *tiny_engine.encode_prompt(request.prompt)[:2], _our_noise(z0, 2, 5)
    )
    np.testing.assert_allclose(tiny_engine.decode(latents), expected, atol=1e-5, rtol=0)


def test_custom_timesteps_match_stock_intermediate(tiny_engine, stock):
    """Custom 2-step times [t_max, 0.9, 0] equal the stock pipeline's intermediate_timesteps=0.9."""
    z0 = np.random.default_rng(1).standard_normal((1, 4, 16, 16)).astype(np.float32)
    expected = _stock_images(stock, "a cyan square", 2, z0, noise_seed=2, intermediate=0.9)
    request = tiny_engine.resolve(GenerateRequest("a cyan square", steps=2, timesteps=(1.5708, 0.9, 0.0)))
    latents = tiny_engine.denoise(
        request, *tiny_engine.encode_prompt(request.prompt)[:2], _our_noise(z0, 2, 2)
    )
    np.testing.assert_allclose(tiny_engine.decode(latents), expected, atol=1e-5, rtol=0)


def test_prompt_embeddings_match_stock(tiny_engine, stock):
    """Same text processing: lower-case, strip, instruction prefix, first + last 299 tokens."""
    embeds, mask, _, _ = tiny_engine.encode_prompt("A Purple Triangle ")
    ref_embeds, ref_mask = stock.encode_prompt(
        "A Purple Triangle ", device="cpu", complex_human_instruction=tiny_engine.chi_lines
    )
    assert embeds.shape == ref_embeds.shape == (1, 300, 32)
    assert torch.equal(mask, ref_mask)
    # Positions the transformer attends to are equal; padding (masked out) is left at zero by our
    # prefix-cached encoder and so may differ.
    real = mask[0].bool()
    assert 2 < int(real.sum()) < 300
    torch.testing.assert_close(embeds[:, real], ref_embeds[:, real], atol=1e-5, rtol=0)

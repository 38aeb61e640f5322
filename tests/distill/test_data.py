"""The latent cache: seeded, keyed to the VAE's weights, and sampled with guidance dropout."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderDC

from sprint_desktop.distill import data
from sprint_desktop.distill.components import make_vae
from sprint_desktop.distill.train_vae import to_tensor
from sprint_desktop.distill.world import render, sample_scene


def _vae_dir(tmp_path, seed):
    folder = tmp_path / f"vae{seed}" / "vae"
    make_vae(seed).save_pretrained(folder)
    return folder


def test_cache_holds_the_encodings_of_the_seeded_training_scenes(tmp_path):
    folder = _vae_dir(tmp_path, 0)
    vae = AutoencoderDC.from_pretrained(folder).eval()
    cache = data.load_or_build(data.cache_path(folder, 5, 3), vae, folder, 5, 3)
    assert cache.latents.shape == (5, 32, 8, 8) and len(cache) == 5
    rng = np.random.default_rng(3)
    scenes = [sample_scene(rng, held_out=False) for _ in range(5)]
    assert cache.captions == [s.caption for s in scenes] and all(cache.captions)
    with torch.no_grad():
        expected = vae.encode(to_tensor(np.stack([render(s) for s in scenes]))).latent
    torch.testing.assert_close(cache.latents, expected, atol=1e-5, rtol=1e-4)


def test_cache_is_reused_for_the_same_vae_and_rebuilt_for_other_weights(tmp_path):
    folder = _vae_dir(tmp_path, 0)
    path = data.cache_path(folder, 4, 0)
    vae = AutoencoderDC.from_pretrained(folder).eval()
    first = data.load_or_build(path, vae, folder, 4, 0)
    stamp = path.stat().st_mtime_ns
    again = data.load_or_build(path, vae, folder, 4, 0)
    assert path.stat().st_mtime_ns == stamp
    torch.testing.assert_close(first.latents, again.latents)
    make_vae(1).save_pretrained(folder)  # retrained VAE: the old latents are stale
    other = AutoencoderDC.from_pretrained(folder).eval()
    rebuilt = data.load_or_build(path, other, folder, 4, 0)
    assert not torch.allclose(rebuilt.latents, first.latents)


def test_batch_applies_guidance_dropout():
    cache = data.LatentCache(torch.arange(6.0).view(6, 1, 1, 1), [f"c{i}" for i in range(6)])
    rng = np.random.default_rng(0)
    latents, captions = cache.batch(rng, 200, empty_p=0.0)
    assert all(captions) and latents.shape == (200, 1, 1, 1)
    # each latent still carries its own caption
    assert all(c == f"c{int(v)}" for v, c in zip(latents.flatten(), captions, strict=True))
    _, dropped = cache.batch(rng, 2000, empty_p=0.1)
    assert 0.07 < sum(c == "" for c in dropped) / 2000 < 0.13

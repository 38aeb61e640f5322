"""A cache of encoded training scenes, so the teacher and the student spend their CPU time on the
transformer and not on rendering and re-encoding the same kind of picture every step.

The world is procedural, so a fresh scene each step is free of overfitting but not of cost: on the
2-core machine rendering 64 scenes and encoding them with the DC-AE took 0.5 s of a 2.1 s teacher
step. A cache of tens of thousands of scenes (training pairs only; no held-out pair) is built once,
stored next to the runs, and sampled with fresh noise and fresh guidance dropout every step.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .world import Scene, render, sample_scene, with_extra_object


@dataclass(frozen=True)
class LatentCache:
    """Unscaled DC-AE latents (N, C, h, w) of ``captions`` (N), all non-empty."""

    latents: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, rng: np.random.Generator, n: int, empty_p: float = 0.0) -> tuple[torch.Tensor, list[str]]:
        """``n`` random pairs; each caption is replaced by "" with probability ``empty_p`` (CFG dropout)."""
        idx = rng.integers(0, len(self), size=n)
        drop = rng.random(n) < empty_p
        captions = ["" if d else self.captions[i] for i, d in zip(idx, drop, strict=True)]
        return self.latents[torch.from_numpy(idx)], captions


def vae_fingerprint(vae_dir: str | Path) -> str:
    """A short hash of the VAE's weights: a cache made with other weights is stale."""
    digest = hashlib.sha256()
    for f in sorted(Path(vae_dir).glob("*.safetensors")):
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def build(vae: Any, n: int, seed: int, chunk: int = 64) -> LatentCache:
    """Render ``n`` training scenes (seeded) and encode them with ``vae``."""
    from .train_vae import to_tensor

    rng = np.random.default_rng(seed)
    latents, captions = [], []
    device = next(vae.parameters()).device
    with torch.no_grad():
        for start in range(0, n, chunk):
            scenes = [sample_scene(rng, held_out=False) for _ in range(min(chunk, n - start))]
            images = np.stack([render(s) for s in scenes])
            latents.append(vae.encode(to_tensor(images).to(device)).latent.float().cpu())
            captions += [s.caption for s in scenes]
    return LatentCache(torch.cat(latents), captions)


def cache_path(vae_dir: str | Path, n: int, seed: int) -> Path:
    """Where the cache of ``n`` scenes from ``seed`` lives: beside the VAE it was encoded with."""
    return Path(vae_dir).parent / f"latents-{n}-seed{seed}.pt"


def load_keyed(path: str | Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The tensors saved at ``path`` (`save_keyed`) when they were saved under ``key``, else None."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state if json.loads(state["key"]) == key else None


def save_keyed(path: str | Path, key: dict[str, Any], state: dict[str, Any]) -> None:
    """Save ``state`` under ``key``, atomically (a process's own file beside ``path``, renamed), so
    a kill never leaves half a cache and two builders never write into one file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"key": json.dumps(key), **state}, tmp)
    tmp.replace(path)


def load_or_build(path: str | Path, vae: Any, vae_dir: str | Path, n: int, seed: int) -> LatentCache:
    """The cache at ``path`` when it was made from the same VAE, size and seed; else build and save it."""
    key = {"vae": vae_fingerprint(vae_dir), "n": n, "seed": seed}
    state = load_keyed(path, key)
    if state is not None:
        return LatentCache(state["latents"], list(json.loads(state["captions"])))
    cache = build(vae, n, seed)
    save_keyed(path, key, {"latents": cache.latents, "captions": json.dumps(cache.captions)})
    return cache


class TrainingLatents:
    """Where the teacher and the students get their training batches: a `LatentCache` of ``n``
    scenes when ``n > 0``, else fresh scenes rendered and encoded every step."""

    def __init__(self, vae: Any, vae_dir: str | Path, n: int, seed: int) -> None:
        self.vae = vae
        self.cache = load_or_build(cache_path(vae_dir, n, seed), vae, vae_dir, n, seed) if n else None

    def batch(self, rng: np.random.Generator, n: int, empty_p: float = 0.0) -> tuple[torch.Tensor, list[str]]:
        """Scaled latents (the VAE's ``scaling_factor`` applied) on the VAE's device, and captions."""
        from .world import sample_batch

        if self.cache is not None:
            latents, captions = self.cache.batch(rng, n, empty_p)
            device = next(self.vae.parameters()).device
            return latents.to(device) * self.vae.config.scaling_factor, captions
        images, captions = sample_batch(rng, n, held_out=False, empty_p=empty_p)
        return encode_scaled(self.vae, images), captions


def encode_scaled(vae: Any, images: np.ndarray) -> torch.Tensor:
    """uint8 images (n, h, w, 3) as the latents training reads: encoded on ``vae``'s device and
    scaled by its ``scaling_factor``."""
    from .train_vae import to_tensor

    with torch.no_grad():
        latents = vae.encode(to_tensor(images).to(next(vae.parameters()).device)).latent
    return latents * vae.config.scaling_factor


def extra_object_latents(vae: Any, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` training scenes drawn with one object too many (`world.with_extra_object`), encoded
    and scaled as `TrainingLatents.batch` gives them, with the captions they no longer match."""
    scenes: list[Scene] = []
    while len(scenes) < n:
        extra = with_extra_object(sample_scene(rng, held_out=False), rng)
        if extra is not None:
            scenes.append(extra)
    return encode_scaled(vae, np.stack([render(s) for s in scenes])), [s.caption for s in scenes]

"""Knowledge distillation on the teacher's ODE pairs (Luhman & Luhman 2021, arXiv 2101.02388; the
same regression distils rectified flow to one step, Liu et al. 2022, arXiv 2209.03003, Sec. 2.3):
the one-step student learns the map noise -> the teacher's sample from that noise.

    z ~ N(0, I);  x_hat = ODE_teacher(z, c, w)      (20 Euler steps, classifier-free guidance w)
    L_kd = || f_theta(sigma_d z, T_MAX, c, w) / sigma_d - x_hat ||^2

Each target is a function of its noise, so the regression does not average over modes the way
denoising does, and it judges exactly the step the app takes first (sCM only reaches it through
consistency along the whole trajectory). A cache of pairs is built once beside the runs (key:
the teacher's weights, size, seed, steps) and sampled every step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.trigflow import SIGMA_D, T_MAX
from .data import vae_fingerprint
from .scm import GUIDANCE_CHOICES, GUIDANCE_EMBED_SCALE, consistency_x0
from .train_teacher import euler_sample
from .world import sample_scene


@dataclass(frozen=True)
class PairCache:
    """Noise (N, C, h, w), the teacher's samples from it (scaled latents), captions, guidance (N,)."""

    noise: torch.Tensor
    target: torch.Tensor
    captions: list[str]
    guidance: torch.Tensor

    def __len__(self) -> int:
        return len(self.captions)

    def batch(
        self, rng: np.random.Generator, n: int
    ) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor]:
        idx = torch.from_numpy(rng.integers(0, len(self), size=n))
        return self.noise[idx], self.target[idx], [self.captions[i] for i in idx.tolist()], self.guidance[idx]


def build(
    teacher: Any, tokenizer: Any, text_encoder: Any, n: int, seed: int, steps: int, chunk: int = 64
) -> PairCache:
    """``n`` pairs from training captions (no held-out pair), guidance drawn from the student's
    choices; each chunk shares one guidance value (the sampler takes one)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    shape = (teacher.config.in_channels, teacher.config.sample_size, teacher.config.sample_size)
    noise, target, captions, guidance = [], [], [], []
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        caps = [sample_scene(rng, held_out=False).caption for _ in range(k)]
        w = float(GUIDANCE_CHOICES[int(rng.integers(len(GUIDANCE_CHOICES)))])
        z = torch.randn((k, *shape), generator=gen)
        noise.append(z)
        target.append(
            euler_sample(teacher, tokenizer, text_encoder, caps, steps, w, 0, noise=z).float().cpu()
        )
        captions += caps
        guidance.append(torch.full((k,), w))
    return PairCache(torch.cat(noise), torch.cat(target), captions, torch.cat(guidance))


def cache_path(runs: str | Path, teacher_dir: str | Path, n: int, seed: int, steps: int) -> Path:
    """Where a teacher's pairs live: under ``runs``, named by the teacher's weights."""
    key = vae_fingerprint(Path(teacher_dir) / "transformer")
    return Path(runs) / f"pairs-{key}-{n}-seed{seed}-{steps}steps.pt"


def load_or_build(
    path: str | Path, teacher: Any, tokenizer: Any, text_encoder: Any, n: int, seed: int, steps: int
) -> PairCache:
    """The pairs at ``path`` when made with the same size, seed and steps; else build and save them."""
    path = Path(path)
    key = {"n": n, "seed": seed, "steps": steps}
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if json.loads(state["key"]) == key:
            return PairCache(
                state["noise"], state["target"], json.loads(state["captions"]), state["guidance"]
            )
    cache = build(teacher, tokenizer, text_encoder, n, seed, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "key": json.dumps(key),
            "noise": cache.noise,
            "target": cache.target,
            "captions": json.dumps(cache.captions),
            "guidance": cache.guidance,
        },
        tmp,
    )
    tmp.replace(path)
    return cache


def kd_loss(
    student: Any,
    noise: torch.Tensor,
    target: torch.Tensor,
    cond: tuple[torch.Tensor, torch.Tensor],
    guidance: torch.Tensor,
) -> torch.Tensor:
    """L_kd: the student's one step from ``noise`` (at the engine's first time, T_MAX) against the
    teacher's sample, both in scaled-latent units."""
    x_t = SIGMA_D * noise
    t = torch.full((noise.shape[0],), T_MAX, device=noise.device)
    x0 = consistency_x0(student, x_t, t, *cond, guidance * GUIDANCE_EMBED_SCALE)
    return torch.mean((x0 / SIGMA_D - target) ** 2)

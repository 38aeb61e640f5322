"""Knowledge distillation on the teacher's ODE pairs (Luhman & Luhman 2021, arXiv 2101.02388; the
same regression distils rectified flow to one step, Liu et al. 2022, arXiv 2209.03003, Sec. 2.3):
the one-step student learns the map noise -> the teacher's sample from that noise.

    z ~ N(0, I);  x_hat = ODE_teacher(z, c, w)      (20 Euler steps, classifier-free guidance w)
    L_kd = || f_theta(sigma_d z, T_MAX, c, w) / sigma_d - x_hat ||^2

Each target is a function of its noise, so the regression does not average over modes the way
denoising does, and it judges exactly the step the app takes first (sCM only reaches it through
consistency along the whole trajectory). The pairs are built once, in shards beside the runs (key:
the teacher's weights, seed, steps), by the student run or ahead of it (`sprint distill pairs`), and
sampled every step.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import SprintError
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


SHARD = 1000
"""Pairs per file: a cache grows shard by shard, several builders can share the work (`train`), and
a stopped build loses at most one shard."""


def shard_path(runs: str | Path, teacher_dir: str | Path, seed: int, steps: int, k: int) -> Path:
    """Where shard ``k`` of a teacher's pairs lives: under ``runs``, named by the teacher's weights."""
    key = vae_fingerprint(Path(teacher_dir) / "transformer")
    return Path(runs) / f"pairs-{key}-seed{seed}-{steps}steps-{k:04d}.pt"


def load_or_build_shard(
    path: Path, teacher: Any, tokenizer: Any, text_encoder: Any, seed: int, steps: int, k: int
) -> PairCache:
    """Shard ``k`` at ``path`` when made with the same seed and steps; else build and save it."""
    key = {"seed": seed, "steps": steps, "shard": k, "size": SHARD}
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if json.loads(state["key"]) == key:
            return PairCache(
                state["noise"], state["target"], json.loads(state["captions"]), state["guidance"]
            )
    cache = build(teacher, tokenizer, text_encoder, SHARD, seed * 1_000_003 + k, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
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


def load_or_build(
    runs: str | Path,
    teacher_dir: str | Path,
    teacher: Any,
    tokenizer: Any,
    text_encoder: Any,
    n: int,
    seed: int,
    steps: int,
    first: int = 0,
) -> PairCache:
    """The first ``n`` pairs of a teacher (shards ``first`` .. as many as ``n`` needs), each shard
    loaded when cached, else built and saved."""
    shards = [
        load_or_build_shard(
            shard_path(runs, teacher_dir, seed, steps, k), teacher, tokenizer, text_encoder, seed, steps, k
        )
        for k in range(first, math.ceil(n / SHARD))
    ]
    if not shards:
        raise SprintError(f"no pairs to load: {n} pairs end before shard {first}")
    whole = PairCache(
        torch.cat([c.noise for c in shards]),
        torch.cat([c.target for c in shards]),
        [cap for c in shards for cap in c.captions],
        torch.cat([c.guidance for c in shards]),
    )
    keep = n - first * SHARD
    return PairCache(whole.noise[:keep], whole.target[:keep], whole.captions[:keep], whole.guidance[:keep])


@dataclass
class PairsConfig:
    teacher: str = "models/sprint-shapes-teacher"
    out: str = "runs"  # the folder the students' --out folders are in: they find the pairs there
    pairs: int = 6000
    first: int = 0  # build from this shard on (a second builder beside the first: e.g. 6 of 12)
    seed: int = 0  # the students' --seed
    steps: int = 20


def train(cfg: PairsConfig) -> Path:
    """Build the missing shards of ``cfg.pairs`` pairs (`sprint distill pairs`)."""
    from diffusers import SanaTransformer2DModel
    from transformers import Gemma2Model

    from .components import make_tokenizer
    from .package import with_guidance_embedding

    text_encoder = Gemma2Model.from_pretrained(Path(cfg.teacher) / "text_encoder").eval()
    teacher = with_guidance_embedding(
        SanaTransformer2DModel.from_pretrained(Path(cfg.teacher) / "transformer")
    )
    teacher = teacher.float().eval().requires_grad_(False)
    load_or_build(
        cfg.out,
        cfg.teacher,
        teacher,
        make_tokenizer(),
        text_encoder,
        cfg.pairs,
        cfg.seed,
        cfg.steps,
        cfg.first,
    )
    return Path(cfg.out)


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

"""The learning-rate schedule of every training here (teacher, student, ControlNet): a linear
warm-up, then a constant rate or a cosine to 0, optionally held first (`lr_factor`)."""

from __future__ import annotations

import math
from typing import Any

import torch


def lr_factor(step: int, cfg: Any) -> float:
    """Learning-rate multiplier: linear warm-up over ``cfg.warmup`` steps, then constant or a
    cosine decay to 0 at ``cfg.iters``. The cosine starts at ``max(warmup, decay_start)``: a
    later start is the warmup-stable-decay schedule (Hägele et al. 2024, "Scaling Laws and
    Compute-Optimal Training beyond Fixed Training Durations", Sec. 3), where a run trained at a
    constant rate is branched into a short cool-down from any of its checkpoints. ``cfg``: a
    teacher's, a student's or a ControlNet's config (warmup, lr_schedule, decay_start, iters)."""
    warm = 1.0 if cfg.warmup <= 0 else min(1.0, (step + 1) / cfg.warmup)
    if cfg.lr_schedule == "constant":
        return warm
    if cfg.lr_schedule == "cosine":
        start = max(cfg.warmup, cfg.decay_start)
        done = min(1.0, max(0, step - start) / max(1, cfg.iters - start))
        return warm * 0.5 * (1 + math.cos(math.pi * done))
    raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {cfg.lr_schedule!r}")


def make_schedule(opt: Any, cfg: Any, step: int) -> Any:
    """`lr_factor`'s schedule over ``opt`` at base rate ``cfg.lr``, at ``step`` as after that many
    steps (a resumed run's optimizer state keeps no schedule of its own)."""
    for group in opt.param_groups:
        group["initial_lr"] = cfg.lr
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(i, cfg), last_epoch=step - 1)

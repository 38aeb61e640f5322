"""Training configs at test size, one place for what the training tests (and the carry / GPU-run
tests of devtools) share; each test names only what it changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sprint_desktop.distill.train_controlnet import ControlNetConfig
from sprint_desktop.distill.train_student import StudentConfig
from sprint_desktop.distill.train_teacher import TeacherConfig
from sprint_desktop.distill.train_vae import VAEConfig


def tiny_teacher(vae: str | Path, out: str | Path, iters: int = 1, **changes: Any) -> TeacherConfig:
    """A teacher run at test size: batches of 2, a 4-image validation batch, a log line per step, one
    evaluation (2 images, 1 step) at the end; ``changes`` override any field."""
    base: dict[str, Any] = dict(
        vae=str(vae),
        out=str(out),
        iters=iters,
        batch=2,
        eval_every=100,
        eval_images=2,
        eval_steps=1,
        log_every=1,
        warmup=1,
        val_images=4,
    )
    return TeacherConfig(**{**base, **changes})


def tiny_vae(out: str | Path, iters: int, **changes: Any) -> VAEConfig:
    """A VAE run at test size: batches of 2, a log line and an evaluation of 4 images per step."""
    base: dict[str, Any] = dict(out=str(out), iters=iters, batch=2, eval_every=1, eval_images=4, log_every=1)
    return VAEConfig(**{**base, **changes})


def tiny_student(teacher: str | Path, vae: str | Path, out: str | Path, **changes: Any) -> StudentConfig:
    """An sCM student run at test size: 2 steps of batch 2, a log line per step, one evaluation
    (2 captions) at the end; ``changes`` override any field."""
    base: dict[str, Any] = dict(
        teacher=str(teacher),
        vae=str(vae),
        out=str(out),
        mode="scm",
        iters=2,
        batch=2,
        eval_every=2,
        eval_images=2,
        log_every=1,
    )
    return StudentConfig(**{**base, **changes})


def tiny_controlnet(model: str | Path, out: str | Path, **changes: Any) -> ControlNetConfig:
    """A ControlNet run at test size on the world: 2 steps of batch 2, a log line per step, one
    evaluation (2 sketches) at the end; ``changes`` override any field."""
    base: dict[str, Any] = dict(
        model=str(model), out=str(out), iters=2, batch=2, log_every=1, eval_every=2, eval_images=2
    )
    return ControlNetConfig(**{**base, **changes})

"""A real tiny teacher run (one iteration on the shipped model's VAE), shared by the carry and the
GPU-run tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..distill.configs import tiny_teacher

VAE = Path(__file__).resolve().parents[2] / "models" / "sprint-shapes" / "vae"


def teacher_config(out: Path, iters: int):
    # a small transformer (16 tokens, one block): the machinery is under test, not the model
    return tiny_teacher(VAE, out, iters, patch_size=2, num_layers=1, num_heads=2)


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory):
    from sprint_desktop.distill.train_teacher import train

    return train(teacher_config(tmp_path_factory.mktemp("cpu") / "teacher", iters=1))

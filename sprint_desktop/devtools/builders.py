"""The tiny SANA-Sprint test model with random weights (tests, benchmarks, the installers' stand-in
model). The configs are in `formats.architectures`, the builder in `export.random_weights`; the
published shapes come from there too (`published_pipeline`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..export.random_weights import build_pipeline
from ..formats.architectures import tiny_configs


def tiny_pipeline(seed: int = 0) -> Any:
    """A ~100k-parameter SANA-Sprint pipeline for tests: 2x VAE, 4 latent channels, 32x32 default size."""
    return build_pipeline(tiny_configs(), seed=seed)


def save_pipeline(pipeline: Any, path: str | Path) -> Path:
    """Save in diffusers layout with safetensors only."""
    path = Path(path)
    pipeline.save_pretrained(path, safe_serialization=True)
    return path

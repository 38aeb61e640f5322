"""A numpy engine behind the real `Engine` interface: fast, deterministic, no model.

Its image depends on everything a real one does (prompt, seed, steps, guidance, sketch, size), so a
test can tell requests apart by their pixels; a prompt containing "fail" raises a `SprintError`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from sprint_desktop.core.errors import InvalidRequestError, ModelLoadError
from sprint_desktop.core.paths import project_root
from sprint_desktop.engine.base import Engine, ModelInfo

EMBEDDED = project_root() / "models" / "sprint-shapes"


class NumpyEngine(Engine):
    backend_name = "numpy"
    vae_scale_factor = 8

    def __init__(
        self,
        path: str | Path = EMBEDDED,
        size: int = 64,
        control_mode: str = "controlnet",
        backend: str = "numpy",
        compile_mode: str = "off",
    ) -> None:
        super().__init__()
        self.backend_name = backend
        self.compile_mode = compile_mode
        self.path = Path(path)
        self.size = size
        self.control_mode = control_mode
        self.max_sequence_length = 16
        self.loaded = False
        self.generated: list[Any] = []

    def load(self) -> ModelInfo:
        if not self.path.is_dir():
            raise ModelLoadError(f"model folder not found: {self.path}")
        self.loaded = True
        return ModelInfo(
            name=self.path.name,
            path=str(self.path),
            backend=self.backend_name,
            device="cpu",
            dtype="float32",
            default_width=self.size,
            default_height=self.size,
            size_multiple=32,
            latent_channels=4,
            max_sequence_length=self.max_sequence_length,
            control_mode=self.control_mode,
            compile_mode=self.compile_mode,
        )

    def close(self) -> None:
        self.loaded = False

    def encode_prompt(self, prompt: str) -> tuple[Any, Any, bool, bool]:
        if "fail" in prompt:
            raise InvalidRequestError(f"the fake engine refuses {prompt!r}")
        digest = hashlib.sha256(prompt.encode()).digest()
        embeds = np.frombuffer(digest, np.uint8).astype(np.float32)[None, None, :4] / 255
        truncated = len(prompt.split()) > self.max_sequence_length - 1
        return embeds, np.ones((1, 1)), False, truncated

    def denoise(self, request, embeds, mask, noise, report=None, check=None):  # type: ignore[no-untyped-def]
        x = noise[0]  # (B, C, h, w)
        for step in range(request.steps):
            if check is not None:
                check()
            if report is not None:
                report("denoise", step, request.steps)
            x = 0.5 * x + embeds[0, 0][None, :, None, None] * request.guidance
        if request.control_image is not None:
            x = x + float(request.control_image.mean()) / 255 * request.control_scale
        self.generated.append(request)
        return x

    def decode(self, latents: Any) -> np.ndarray:
        up = latents[:, :3].repeat(self.vae_scale_factor, axis=2).repeat(self.vae_scale_factor, axis=3)
        return (1 / (1 + np.exp(-up))).transpose(0, 2, 3, 1)

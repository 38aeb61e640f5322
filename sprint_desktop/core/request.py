"""The request is the contract: everything that changes the image lives in one frozen dataclass.

Two equal requests give the same pixels on the same backend; the live canvas compares requests to
decide whether to run.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidRequestError
from .trigflow import MAX_STEPS, MIN_STEPS, check_timesteps

MAX_PROMPT_CHARS = 10_000
MAX_BATCH = 16
MAX_SEED = 2**63 - 1
MAX_GUIDANCE = 50.0
MAX_SIDE = 4096
DEFAULT_STEPS = 2
DEFAULT_GUIDANCE = 4.5


def _as_control_array(image: Any) -> np.ndarray:
    """Control images cross the boundary as uint8 (H, W, 3); PIL images are converted."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image, without importing PIL here
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidRequestError(
            f"control_image must be a uint8 array of shape (H, W, 3), got {arr.dtype} {arr.shape}"
        )
    arr = np.ascontiguousarray(arr).copy()
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: prompt, sampling parameters and (later) a control sketch.

    ``control_image`` (uint8 H x W x 3, dark strokes on white) conditions the image: through a
    ControlNet when the model has one (``control_scale``), otherwise as sketch-guided
    image-to-image that starts from TrigFlow time ``strength * t_max``.
    ``width``/``height`` of ``None`` mean the model's default size; the engine fills them in and
    returns the resolved request with the result. ``batch_size`` images use seeds
    ``seed, seed + 1, ...`` so image ``i`` of a batch equals a single request with ``seed + i``.
    """

    prompt: str
    steps: int = DEFAULT_STEPS
    seed: int = 0
    width: int | None = None
    height: int | None = None
    guidance: float = DEFAULT_GUIDANCE
    timesteps: tuple[float, ...] | None = None
    control_image: np.ndarray | None = field(default=None, compare=False, repr=False)
    control_scale: float = 1.0
    strength: float = 0.8
    batch_size: int = 1
    model: str = ""
    backend: str = "torch"
    control_digest: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.timesteps is not None:
            object.__setattr__(self, "timesteps", tuple(float(t) for t in self.timesteps))
        if self.control_image is not None:
            arr = _as_control_array(self.control_image)
            object.__setattr__(self, "control_image", arr)
            digest = hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:32]
            object.__setattr__(self, "control_digest", digest)

    def validate(self) -> GenerateRequest:
        """Check every field once, at the boundary; raise `InvalidRequestError` naming the field."""
        if not isinstance(self.prompt, str):
            raise InvalidRequestError(f"prompt must be text, got {type(self.prompt).__name__}")
        if not self.prompt.strip():
            raise InvalidRequestError("prompt is empty: type what you want to see")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequestError(
                f"prompt is too long: {len(self.prompt):,} characters (the limit is {MAX_PROMPT_CHARS:,})"
            )
        if "\x00" in self.prompt:
            raise InvalidRequestError("prompt contains a NUL character")
        if not _is_int(self.steps) or not MIN_STEPS <= self.steps <= MAX_STEPS:
            raise InvalidRequestError(f"steps must be {MIN_STEPS}-{MAX_STEPS}, got {self.steps!r}")
        if self.timesteps is not None:
            try:
                ts = check_timesteps(self.timesteps)
            except ValueError as exc:
                raise InvalidRequestError(str(exc)) from None
            if len(ts) != self.steps + 1:
                raise InvalidRequestError(
                    f"custom timesteps need steps + 1 = {self.steps + 1} values, got {len(ts)}"
                )
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise InvalidRequestError(f"seed must be an integer from 0 to 2^63-1, got {self.seed!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or not 1 <= value <= MAX_SIDE):
                raise InvalidRequestError(
                    f"{name} must be a whole number of pixels 1-{MAX_SIDE}, got {value!r}"
                )
        if not _is_number(self.guidance) or not math.isfinite(self.guidance):
            raise InvalidRequestError(f"guidance must be a finite number, got {self.guidance!r}")
        if not 0 <= self.guidance <= MAX_GUIDANCE:
            raise InvalidRequestError(f"guidance must be 0-{MAX_GUIDANCE:g}, got {self.guidance!r}")
        if not _is_number(self.control_scale) or not math.isfinite(self.control_scale):
            raise InvalidRequestError(f"control_scale must be a finite number, got {self.control_scale!r}")
        if not 0 <= self.control_scale <= 2:
            raise InvalidRequestError(f"control_scale must be 0-2, got {self.control_scale!r}")
        if not _is_number(self.strength) or not math.isfinite(self.strength) or not 0 < self.strength <= 1:
            raise InvalidRequestError(f"strength must be above 0 and at most 1, got {self.strength!r}")
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH:
            raise InvalidRequestError(f"batch_size must be 1-{MAX_BATCH}, got {self.batch_size!r}")
        if int(self.seed) + int(self.batch_size) - 1 > MAX_SEED:
            raise InvalidRequestError("seed + batch_size - 1 overflows 2^63-1")
        return self

    @property
    def seeds(self) -> list[int]:
        return [int(self.seed) + i for i in range(int(self.batch_size))]

    def to_metadata(self) -> dict[str, Any]:
        """The parameters written into a PNG (everything but the control pixels)."""
        meta: dict[str, Any] = {
            "prompt": self.prompt,
            "steps": self.steps,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "guidance": self.guidance,
            "model": self.model,
            "backend": self.backend,
        }
        if self.timesteps is not None:
            meta["timesteps"] = list(self.timesteps)
        if self.control_digest is not None:
            meta["control_digest"] = self.control_digest
            meta["control_scale"] = self.control_scale
            meta["strength"] = self.strength
        return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Timings:
    """Per-stage wall time of one request, in milliseconds."""

    encode_ms: float
    denoise_ms: float
    decode_ms: float
    total_ms: float

    def as_dict(self) -> dict[str, float]:
        return {
            "encode_ms": round(self.encode_ms, 3),
            "denoise_ms": round(self.denoise_ms, 3),
            "decode_ms": round(self.decode_ms, 3),
            "total_ms": round(self.total_ms, 3),
        }


@dataclass(frozen=True)
class GenerateResult:
    """Images as uint8 (H, W, 3) arrays, the resolved request, and where the time went."""

    images: tuple[np.ndarray, ...]
    request: GenerateRequest
    timings: Timings
    prompt_cache_hit: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def image(self) -> np.ndarray:
        return self.images[0]

    def metadata(self, index: int = 0) -> dict[str, Any]:
        meta = self.request.to_metadata()
        meta["seed"] = self.request.seed + index
        return meta

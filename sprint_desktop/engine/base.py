"""The engine interface shared by every backend, the GUI worker, the CLI and the benchmarks."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

from ..core.cancel import CancelToken
from ..core.request import GenerateRequest, GenerateResult


@dataclass(frozen=True)
class Progress:
    """``stage`` is "encode", "denoise" or "decode"; ``step`` of ``total`` within the denoise stage."""

    request_id: int
    stage: str
    step: int
    total: int


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is and how it may be asked."""

    name: str
    path: str
    backend: str
    device: str
    dtype: str
    default_width: int
    default_height: int
    size_multiple: int
    latent_channels: int
    max_sequence_length: int
    control_mode: str = "img2img"
    """How a control image is used: "controlnet" when the model has one, else "img2img"."""


def resolve_request(request: GenerateRequest, info: ModelInfo) -> GenerateRequest:
    """Validate ``request`` for this model (size multiples) and fill in the model's defaults."""
    from dataclasses import replace

    from ..core.errors import InvalidRequestError

    request = request.validate()
    width = request.width or info.default_width
    height = request.height or info.default_height
    m = info.size_multiple
    for label, value in (("width", width), ("height", height)):
        if value % m:
            lower, upper = max(m, value // m * m), (value // m + 1) * m
            raise InvalidRequestError(
                f"{label} must be a multiple of {m} for this model, got {value} (try {lower} or {upper})"
            )
    return replace(
        request, width=width, height=height, model=request.model or info.name, backend=info.backend
    )


class Engine(abc.ABC):
    """Load once, generate many; every method but `cancel` is called from one thread."""

    @abc.abstractmethod
    def load(self) -> ModelInfo:
        """Load the model (idempotent); raise `ModelLoadError` with a readable message on failure."""

    @abc.abstractmethod
    def generate(
        self,
        request: GenerateRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        request_id: int = 0,
    ) -> GenerateResult:
        """Generate ``request``; raise `InvalidRequestError` or `GenerationCancelled`."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Cancel the request in flight, if any (safe to call from any thread)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the model and its memory."""

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo:
        """The loaded model's description (loads it if needed)."""

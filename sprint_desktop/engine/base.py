"""The engine interface shared by every backend, the GUI worker, the CLI and the benchmarks."""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.cancel import CancelToken
from ..core.errors import GenerationCancelled, SprintError
from ..core.noise import draw_noise
from ..core.request import GenerateRequest, GenerateResult, Timings


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
    default_steps: int = 2
    """Steps an image gets unless asked otherwise (``default_steps`` in ``sprint_desktop.json``)."""
    refine_steps: int = 4
    """The model's best step count: "instant, then refine" refines at it (``refine_steps``)."""
    compile_mode: str = "off"
    """The PyTorch engine's ``torch.compile`` mode in effect ("off": eager; ONNX Runtime: "off")."""


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


class NonFiniteOutputError(SprintError):
    """The model produced NaN or infinite values: damaged weights, or a dtype that overflows."""


def non_finite_message(stage: str, dtype: str) -> str:
    return (
        f"the model produced NaN or infinite values in its {stage} ({dtype}), so there is no image to "
        "show: its weights may be damaged (check them with `sprint models --verify NAME`, or download "
        "the model again), or this precision overflows (try fp32)"
    )


def _all_finite_numpy(array: Any) -> bool:
    return bool(np.isfinite(np.asarray(array)).all())


OVERSIZE_FACTOR = 4
"""Images with more than this many times the pixels of the model's default size get a warning."""


def size_warning(width: int, height: int, info: ModelInfo) -> str | None:
    """A warning for a size far above what the model was trained at (slow, and poor images)."""
    trained = info.default_width * info.default_height
    if trained <= 0 or width * height <= OVERSIZE_FACTOR * trained:
        return None
    return (
        f"{width}x{height} is {width * height / trained:.0f} times the pixels of this model's "
        f"{info.default_width}x{info.default_height}: it will be slow (time grows faster than the "
        "pixel count) and the model was not trained for it"
    )


class Engine(abc.ABC):
    """Load once, generate many; every method but `cancel` is called from one thread.

    Backends implement loading and the three stages (`encode_prompt`, `denoise`, `decode`); the
    request handling, seeded noise, cancellation and timing below are shared."""

    backend_name = ""
    vae_scale_factor: int

    def __init__(self) -> None:
        self._cancel_lock = threading.Lock()
        self._current_cancel: CancelToken | None = None
        self.notices: list[str] = []

    @abc.abstractmethod
    def load(self) -> ModelInfo:
        """Load the model (idempotent); raise `ModelLoadError` with a readable message on failure."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the model and its memory."""

    @property
    def info(self) -> ModelInfo:
        """The loaded model's description (loads it if needed)."""
        return self.load()

    def cancel(self) -> None:
        """Cancel the request in flight, if any (safe to call from any thread)."""
        with self._cancel_lock:
            if self._current_cancel is not None:
                self._current_cancel.cancel()

    def resolve(self, request: GenerateRequest) -> GenerateRequest:
        """Validate ``request`` against this model and fill in the model's defaults."""
        return resolve_request(request, self.load())

    def latent_shape(self, request: GenerateRequest) -> tuple[int, int, int]:
        assert request.width is not None and request.height is not None
        return (
            self.info.latent_channels,
            request.height // self.vae_scale_factor,
            request.width // self.vae_scale_factor,
        )

    def generate(
        self,
        request: GenerateRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        request_id: int = 0,
    ) -> GenerateResult:
        """Generate ``request``; raise `InvalidRequestError` or `GenerationCancelled`."""
        request = self.resolve(request)
        shape = self.latent_shape(request)
        noise = np.stack([draw_noise(seed, shape, request.steps) for seed in request.seeds], axis=1)
        return self.generate_with_noise(request, noise, progress, cancel, request_id)

    def generate_with_noise(
        self,
        request: GenerateRequest,
        noise: Any,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        request_id: int = 0,
    ) -> GenerateResult:
        """Generate with explicit unit noise of shape ``(steps, batch, C, h, w)``: ``[0]`` is the
        starting latent, ``[i]`` re-noises before step ``i``. `generate` draws it from the seed."""
        request = self.resolve(request)
        cancel = cancel or CancelToken()
        with self._cancel_lock:
            self._current_cancel = cancel
        try:
            return self._run_guarded(request, noise, progress, cancel, request_id)
        finally:
            with self._cancel_lock:
                self._current_cancel = None

    def _run_guarded(
        self,
        request: GenerateRequest,
        noise: Any,
        progress: ProgressCallback | None,
        cancel: CancelToken,
        request_id: int,
    ) -> GenerateResult:
        """`_run` inside whatever the backend needs around it (a no-grad mode, error translation)."""
        return self._run(request, noise, progress, cancel, request_id)

    # ---- the stages every backend implements, and the one sequence that times them -------------
    max_sequence_length: int
    notices: list[str]

    def encode_prompt(self, prompt: str) -> tuple[Any, Any, bool, bool]:
        """(embeds (1, L, D), mask (1, L), cache hit, truncated)."""
        raise NotImplementedError

    def denoise(
        self,
        request: GenerateRequest,
        embeds: Any,
        mask: Any,
        noise: Any,
        report: Any = None,
        check: Any = None,
    ) -> Any:
        """1-4 TrigFlow steps; the clean latent ``(B, C, h, w)``."""
        raise NotImplementedError

    def decode(self, latents: Any) -> np.ndarray:
        """Float images in [0, 1], ``(B, H, W, 3)``."""
        raise NotImplementedError

    def _all_finite(self, latents: Any) -> bool:
        """Whether ``latents`` (the backend's array type) holds only finite values."""
        return _all_finite_numpy(latents)

    def _sync(self) -> None:  # noqa: B027 - a hook with a default, not an abstract method
        """Wait for queued device work (so stage timings are honest); a no-op on the CPU."""
        return None

    def _run(
        self,
        request: GenerateRequest,
        noise: Any,
        progress: ProgressCallback | None,
        cancel: CancelToken,
        request_id: int,
    ) -> GenerateResult:
        """encode -> denoise -> decode, with progress, cancellation between steps and stage timings."""

        def report(stage: str, step: int, total: int) -> None:
            if progress is not None:
                progress(Progress(request_id, stage, step, total))

        def check() -> None:
            if cancel.cancelled:
                raise GenerationCancelled(f"request {request_id} was cancelled")

        start = time.perf_counter()
        check()
        report("encode", 0, 1)
        embeds, mask, hit, truncated = self.encode_prompt(request.prompt)
        self._sync()
        t_encode = time.perf_counter()
        latents = self.denoise(request, embeds, mask, noise, report, check)
        self._sync()
        t_denoise = time.perf_counter()
        check()
        dtype = str(getattr(self.info, "dtype", "?"))
        if not self._all_finite(latents):  # decode would clamp an Inf into a plausible pixel
            raise NonFiniteOutputError(non_finite_message("latents", dtype))
        report("decode", 0, 1)
        images = self.decode(latents)
        if not _all_finite_numpy(images):
            raise NonFiniteOutputError(non_finite_message("decoded image", dtype))
        t_decode = time.perf_counter()
        warnings = tuple(getattr(self, "notices", ()))
        oversize = size_warning(int(request.width or 0), int(request.height or 0), self.info)
        if oversize:
            warnings += (oversize,)
        if truncated:
            warnings += (f"the prompt is longer than {self.max_sequence_length} tokens; its end was ignored",)
        timings = Timings(
            encode_ms=(t_encode - start) * 1e3,
            denoise_ms=(t_denoise - t_encode) * 1e3,
            decode_ms=(t_decode - t_denoise) * 1e3,
            total_ms=(t_decode - start) * 1e3,
        )
        # [0, 1] float -> uint8 with the same rounding as diffusers' numpy_to_pil.
        uint8 = tuple(np.ascontiguousarray((img * 255).round().astype(np.uint8)) for img in images)
        return GenerateResult(uint8, request, timings, prompt_cache_hit=hit, warnings=warnings)

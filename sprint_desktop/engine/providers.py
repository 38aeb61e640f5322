"""ONNX Runtime execution providers, best first: TensorRT-RTX (the NVIDIA plugin EP), CUDA, DirectML,
CPU. Each way of opening the model's sessions is tried in turn; one that fails (a plugin that does
not load, a driver too old, an engine build that runs out of memory) falls back to the next with a
notice, never a crash.

TensorRT-RTX ships as a plugin for the plain ``onnxruntime`` package (``onnxruntime-ep-nv-tensorrt-
rtx-cu13``, offered with the first-use GPU runtime: ``resources/gpu-runtime.toml``). It is registered
once per process with ``register_execution_provider_library`` and selected per session with
``add_provider_for_devices``; the engines it compiles are cached under ``<user cache>/tensorrt-rtx``
so only the first load of a model pays for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.paths import user_cache_dir
from . import optimized_graphs

log = logging.getLogger(__name__)

TRT_RTX_EP = "NvTensorRTRTXExecutionProvider"
TRT_RTX_MODULE = "onnxruntime_ep_nv_tensorrt_rtx"
PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
DEVICE_OF = {
    TRT_RTX_EP: "tensorrt-rtx",
    "TensorrtExecutionProvider": "tensorrt",
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "directml",
    "CPUExecutionProvider": "cpu",
}
EP_TITLE = {
    "tensorrt-rtx": "TensorRT-RTX",
    "tensorrt": "TensorRT",
    "cuda": "CUDA",
    "directml": "DirectML",
    "cpu": "CPU",
}


def choose_providers(device: str | None, available: list[str]) -> list[str]:
    """Providers to request, best first: all accelerated ones for auto/cuda, the CPU alone for cpu."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = [p for p in PROVIDER_ORDER if p in available]
    return wanted or ["CPUExecutionProvider"]


def tensorrt_rtx_cache_dir() -> Any:
    return user_cache_dir() / "tensorrt-rtx"


_registered: dict[str, str | None] = {}
"""ep name -> None once registered in this process, or why registering failed."""


def tensorrt_rtx_devices(ort: Any) -> tuple[list[Any], str | None]:
    """The TensorRT-RTX plugin's devices (registering it once), or ``([], why not)``; ``([], None)``
    when the plugin is not installed (nothing to say)."""
    import importlib

    try:
        plugin = importlib.import_module(TRT_RTX_MODULE)
    except ImportError:
        return [], None
    except Exception as exc:  # noqa: BLE001 - a broken install must not stop the app
        return [], f"the TensorRT-RTX plugin does not import ({type(exc).__name__}: {exc})"
    if not hasattr(ort, "register_execution_provider_library"):
        return [], f"this onnxruntime ({ort.__version__}) cannot load plugin execution providers"
    name = str(getattr(plugin, "get_ep_name", lambda: TRT_RTX_EP)())
    if name not in _registered:
        try:
            ort.register_execution_provider_library(name, str(plugin.get_library_path()))
            _registered[name] = None
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            _registered[name] = f"the TensorRT-RTX plugin could not be registered ({exc})"
    if _registered[name] is not None:
        return [], _registered[name]
    devices = [d for d in ort.get_ep_devices() if d.ep_name == name]
    if not devices:
        return [], "TensorRT-RTX found no supported GPU"
    return devices, None


@dataclass
class Attempt:
    """One way of opening the sessions: a label for notices and a function making session options
    and the ``providers`` argument."""

    label: str
    configure: Callable[[Any], list[str] | None]
    notes: list[str] = field(default_factory=list)


def attempts(
    ort: Any, device: str | None, requested: list[str], only: str | None = None
) -> tuple[list[Attempt], list[str]]:
    """The ways to try, best first, and notices about providers that cannot even be tried.
    ``only`` ("tensorrt-rtx", "cuda", "cpu") keeps that provider alone (benchmarks): no fall back."""
    if only is not None:
        return _only(ort, only, requested), []
    notices: list[str] = []
    tries: list[Attempt] = []
    if device != "cpu":
        devices, problem = tensorrt_rtx_devices(ort)
        if problem:
            notices.append(f"{problem}; using the next execution provider")
        if devices:
            tries.append(_trt_rtx_attempt(devices))
    tries.append(
        Attempt(" / ".join(EP_TITLE.get(DEVICE_OF.get(p, p), p) for p in requested), lambda o: requested)
    )
    if requested != ["CPUExecutionProvider"]:
        tries.append(Attempt("CPU", lambda o: ["CPUExecutionProvider"]))
    return tries, notices


def _trt_rtx_attempt(devices: list[Any]) -> Attempt:
    """Sessions on the TensorRT-RTX plugin's devices, its compiled engines cached per user."""
    cache = tensorrt_rtx_cache_dir()

    def configure(options: Any) -> None:
        cache.mkdir(parents=True, exist_ok=True)
        options.add_provider_for_devices(devices, {"nv_runtime_cache_path": str(cache)})

    return Attempt("TensorRT-RTX", configure)


def _only(ort: Any, only: str, requested: list[str]) -> list[Attempt]:
    from ..core.errors import ModelLoadError

    if only == "tensorrt-rtx":
        devices, problem = tensorrt_rtx_devices(ort)
        if not devices:
            raise ModelLoadError(f"TensorRT-RTX is not available: {problem or 'the plugin is not installed'}")
        return [_trt_rtx_attempt(devices)]
    names = {
        "cuda": "CUDAExecutionProvider",
        "directml": "DmlExecutionProvider",
        "cpu": "CPUExecutionProvider",
    }
    if only not in names:
        raise ModelLoadError(
            f"unknown execution provider {only!r}: choose tensorrt-rtx, cuda, directml or cpu"
        )
    if names[only] not in ort.get_available_providers():
        raise ModelLoadError(f"this onnxruntime has no {EP_TITLE[only]} execution provider")
    return [
        Attempt(
            EP_TITLE[only],
            lambda o: [names[only], "CPUExecutionProvider"] if only != "cpu" else [names[only]],
        )
    ]


def open_sessions(
    ort: Any,
    files: dict[str, str],
    make_options: Callable[[], Any],
    tries: list[Attempt],
    notices: list[str],
    on_cpu: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Sessions for every graph in ``files`` with the first attempt that opens them all (the graphs
    in ``on_cpu`` always on the CPU); each one that fails adds a notice. Raises the last error when
    none works."""
    last: Exception | None = None
    for i, attempt in enumerate(tries):
        try:
            sessions = {}
            for component, path in files.items():
                sessions[component] = _open(ort, path, make_options, attempt, component in on_cpu)
            return sessions
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            last = exc
            if i + 1 < len(tries):
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                notices.append(
                    f"{attempt.label} failed ({first_line[:200]}); falling back to {tries[i + 1].label}"
                )
                log.warning("opening the ONNX sessions with %s failed: %s", attempt.label, exc)
    assert last is not None
    raise last


def _open(ort: Any, path: str, make_options: Callable[[], Any], attempt: Attempt, on_cpu: bool) -> Any:
    """One session: on the CPU provider (from its cached optimized graph: `optimized_graphs`), or
    as ``attempt`` configures it."""
    options = make_options()
    providers = ["CPUExecutionProvider"] if on_cpu else attempt.configure(options)
    if providers == ["CPUExecutionProvider"]:
        return optimized_graphs.open_session(ort, path, make_options, providers)
    if providers is None:
        return ort.InferenceSession(path, sess_options=options)
    return ort.InferenceSession(path, sess_options=options, providers=providers)


GPU_MARGIN_BYTES = 2 << 30
"""VRAM kept free for activations at 1024 px, ONNX Runtime's arena and the desktop."""


def text_encoder_on_cpu(gpu_memory_bytes: int | None, weights: dict[str, int]) -> bool:
    """Whether the text encoder should run on the CPU: when all the graphs' weights (bytes per
    component) and a margin do not fit the GPU's memory. The text encoder is the one to move: it
    runs once per new prompt (the prompt cache skips it for repeats), while the transformer runs
    every step. E.g. SANA-Sprint 0.6B (fp32 Gemma-2 10.4 GB + fp16 transformer 1.2 GB + fp32 DC-AE):
    on the CPU for 8 and 12 GB cards, on the GPU from 16 GB."""
    if gpu_memory_bytes is None or "text_encoder" not in weights:
        return False
    return sum(weights.values()) + GPU_MARGIN_BYTES > gpu_memory_bytes

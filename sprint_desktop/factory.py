"""The runtime wiring, in one place for the CLI and the GUI worker: pick a backend whose runtime
imports here (PyTorch or ONNX Runtime; "auto" prefers a usable ONNX export), activate an installed
GPU runtime, find or make the ONNX export (shipped, cached, bound to weight-free graphs, or exported
with PyTorch), and create the engine. Above `engine`, `export` and `store`, which know nothing of it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .core.errors import SprintError
from .engine.base import Engine

__all__ = [
    "AUTO",
    "BACKEND_CHOICES",
    "auto_prefers_onnx",
    "choose_backend",
    "create_engine",
    "export_ready",
    "runtime_problem",
]

RUNTIMES = {"torch": ("torch", "PyTorch"), "onnx": ("onnxruntime", "ONNX Runtime")}


def runtime_problem(backend: str) -> str | None:
    """None when ``backend``'s runtime imports here, else why not (imports it: call off the GUI thread)."""
    module, _ = RUNTIMES[backend]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc)  # e.g. "No module named 'torch'"
    except Exception as exc:  # noqa: BLE001 - e.g. OSError from a broken native library
        return f"{type(exc).__name__}: {exc}"
    return None


AUTO = "auto"
BACKEND_CHOICES = (AUTO, *RUNTIMES)


def choose_backend(
    preferred: str, model_path: str | Path | None = None, device: str | None = None
) -> tuple[str, str | None]:
    """The backend to run and a notice for the user (or None).

    ``"auto"`` (the default of the CLI and the app) starts on ONNX Runtime when ``model_path`` has a
    usable export (shipped in the model folder or cached: `auto_prefers_onnx`), so no PyTorch is
    imported on the way to the first image; otherwise PyTorch, and ONNX Runtime when PyTorch cannot
    be imported (which then exports, or explains why it cannot).

    ``"torch"`` or ``"onnx"``: that backend when its runtime imports, else the other one and a
    notice saying why (the packaged app ships ONNX Runtime and no PyTorch). Raises `SprintError`
    when neither runtime can be imported."""
    if preferred == AUTO:
        preferred = "onnx" if model_path is not None and auto_prefers_onnx(model_path, device) else "torch"
    if preferred not in RUNTIMES:
        raise SprintError(f"unknown backend {preferred!r}: choose {', '.join(BACKEND_CHOICES)}")
    problem = runtime_problem(preferred)
    if problem is None:
        return preferred, None
    other = next(b for b in RUNTIMES if b != preferred)
    other_problem = runtime_problem(other)
    wanted, fallback = RUNTIMES[preferred][1], RUNTIMES[other][1]
    if other_problem is None:
        return other, f"{wanted} is not available ({problem}); using {fallback} instead."
    raise SprintError(
        f"Neither {wanted} nor {fallback} can be loaded, so no model can run "
        f"({RUNTIMES[preferred][0]}: {problem}; {RUNTIMES[other][0]}: {other_problem}). "
        "Reinstall Sprint Desktop, or install one of them: pip install onnxruntime"
    )


def export_ready(model_path: str | Path) -> bool:
    """Whether the ONNX backend can start on ``model_path`` without exporting (so without PyTorch):
    a valid export is shipped in the model folder or cached for it. File checks only."""
    from .export.cache import find_export

    folder = Path(model_path).expanduser()
    if not (folder / "model_index.json").is_file():
        return False
    try:
        from .export.binder import find_bound

        return find_export(folder) is not None or any(find_bound(folder, p) for p in ("fp32", "fp16"))
    except OSError:
        return False


def auto_prefers_onnx(model_path: str | Path, device: str | None = None) -> bool:
    """``"auto"``'s choice: ONNX Runtime when the model has a usable export, unless a GPU is wanted
    (``device`` "cuda", or None with an NVIDIA GPU present) and this onnxruntime has no CUDA
    provider: then PyTorch, which runs on that GPU. Never imports torch."""
    if not export_ready(model_path):
        return False
    if device == "cpu":
        return True
    if device != "cuda":
        from .core.nvidia import from_nvml, from_proc

        if from_nvml() is None and from_proc() is None:
            return True  # no NVIDIA GPU: ONNX Runtime's CPU provider is the faster CPU engine
    from .store.gpu_runtime import activate_gpu_runtime

    activate_gpu_runtime()  # an installed onnxruntime-gpu must win over the bundled CPU one
    try:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    except Exception:  # noqa: BLE001 - a broken onnxruntime: not this backend
        return False


def create_engine(
    model_path: str,
    backend: str = "torch",
    device: str | None = None,
    export_progress=None,
    bind_progress=None,
    compile: str | None = None,
    **kwargs,
) -> Engine:
    """Create (not yet load) the engine for ``backend`` over the model folder ``model_path``.

    ``compile`` is the PyTorch engine's ``torch.compile`` mode ("off", "default",
    "reduce-overhead"; see `TorchEngine`); ONNX Runtime ignores it.

    With ``backend="onnx"`` the export is found in this order: the one shipped in the model folder,
    a cached export, an earlier binding of the model's weights to installed weight-free graphs, a
    new binding (``bind_progress(stage, MiB done, MiB total)`` reports it), and last an export with
    PyTorch when it is installed (``export_progress(component, index, total)`` reports it)."""
    if backend == "torch":
        from .engine.torch_backend import TorchEngine

        return TorchEngine(model_path, device=device, compile=compile, **kwargs)
    if backend == "onnx":
        from .store.gpu_runtime import activate_gpu_runtime

        activate_gpu_runtime()  # onnxruntime-gpu installed on first use wins over the bundled CPU one

        from .engine.onnx_backend import OnnxEngine
        from .export.cache import find_export
        from .formats.model_folder import inspect_model_folder

        folder = inspect_model_folder(model_path).path
        export = find_export(folder) or _bound_export(folder, device, bind_progress)
        return OnnxEngine(export or _torch_export(folder, export_progress), device=device, model_path=folder)
    raise SprintError(f"unknown backend {backend!r}: choose torch or onnx (auto goes through choose_backend)")


def _bound_export(folder, device: str | None, progress) -> Any:
    """The model's weights bound to installed weight-free graphs (`export.binder`), or None when no
    graph set is installed for it and PyTorch can export it instead. Raises when neither works: the
    message names what differs from the closest graphs and how to make graphs."""
    from .core.errors import ModelLoadError
    from .export.binder import bind, find_bound
    from .export.graph_library import library_records

    for precision in _graph_precisions(device):
        found = find_bound(folder, precision)
        if found is not None:
            return found
    problem: ModelLoadError | None = None
    for precision in _graph_precisions(device):
        try:
            return bind(folder, precision, progress=progress)
        except ModelLoadError as exc:
            problem = problem or exc
    try:
        import sprint_desktop.export.onnx_export  # noqa: F401 - needs PyTorch
    except ImportError:
        pass
    else:
        return None  # PyTorch is here: export the model instead
    shipped = folder / "onnx" / "manifest.json"
    if shipped.is_file():
        raise SprintError(
            f"the ONNX export shipped in {shipped.parent} does not match the model's files or its own "
            "checksums, and exporting "
            f"needs PyTorch: run 'sprint export-onnx --model {folder}' on a machine with it"
        )
    if not library_records():
        raise SprintError(
            f"no ONNX export of {folder} yet and no ONNX graphs are installed, and exporting needs "
            f"PyTorch: run 'sprint export-onnx --graph-only --model {folder}' on a machine with it"
        )
    raise SprintError(str(problem))


def _graph_precisions(device: str | None) -> list[str]:
    """fp16 graphs first where a GPU provider may run them, fp32 only on the CPU."""
    if device == "cpu":
        return ["fp32"]
    try:
        import onnxruntime as ort

        gpu = any(
            p in ort.get_available_providers() for p in ("CUDAExecutionProvider", "DmlExecutionProvider")
        )
    except Exception:  # noqa: BLE001 - a broken runtime shows up when the engine loads
        gpu = False
    return ["fp16", "fp32"] if gpu else ["fp32"]


def _torch_export(folder, progress) -> Any:
    from .export.onnx_export import export_model  # only reached when the import above worked

    return export_model(folder, progress=progress)

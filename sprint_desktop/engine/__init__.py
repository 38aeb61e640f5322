"""Engines behind one interface: load a model, generate a request, report progress, cancel, close.

Importing this package is cheap: backends import torch/onnxruntime only when created.
"""

from .base import Engine, ModelInfo, Progress, ProgressCallback

__all__ = ["Engine", "ModelInfo", "Progress", "ProgressCallback", "choose_backend", "create_engine"]

RUNTIMES = {"torch": ("torch", "PyTorch"), "onnx": ("onnxruntime", "ONNX Runtime")}


def runtime_problem(backend: str) -> str | None:
    """None when ``backend``'s runtime imports here, else why not (imports it: call off the GUI thread)."""
    import importlib

    module, _ = RUNTIMES[backend]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc)  # e.g. "No module named 'torch'"
    except Exception as exc:  # noqa: BLE001 - e.g. OSError from a broken native library
        return f"{type(exc).__name__}: {exc}"
    return None


def choose_backend(preferred: str) -> tuple[str, str | None]:
    """The backend to run: ``preferred`` when its runtime imports, else the other one and a notice
    saying why (the packaged app ships ONNX Runtime and no PyTorch). Raises `SprintError` when
    neither runtime can be imported."""
    from ..core.errors import SprintError

    if preferred not in RUNTIMES:
        raise SprintError(f"unknown backend {preferred!r}: choose torch or onnx")
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


def create_engine(
    model_path: str, backend: str = "torch", device: str | None = None, export_progress=None, **kwargs
) -> Engine:
    """Create (not yet load) the engine for ``backend`` over the model folder ``model_path``.

    With ``backend="onnx"`` and no cached export yet, the model is exported first;
    ``export_progress(component, index, total)`` reports it."""
    from ..core.errors import SprintError

    if backend == "torch":
        from .torch_backend import TorchEngine

        return TorchEngine(model_path, device=device, **kwargs)
    if backend == "onnx":
        from pathlib import Path

        from ..store.gpu_runtime import activate_gpu_runtime

        activate_gpu_runtime()  # onnxruntime-gpu installed on first use wins over the bundled CPU one

        from ..export.cache import SHIPPED_DIR, find_export
        from .model_folder import inspect_model_folder
        from .onnx_backend import OnnxEngine

        folder = inspect_model_folder(model_path).path
        export = find_export(folder)
        if export is None:
            try:
                from ..export.onnx_export import export_model
            except ImportError:
                shipped = folder / SHIPPED_DIR
                missing = (
                    f"the ONNX export shipped in {shipped} does not match the model's files"
                    if (shipped / "manifest.json").is_file()
                    else f"no ONNX export of {folder} yet"
                )
                raise SprintError(
                    f"{missing}, and exporting needs PyTorch: run "
                    f"'sprint export-onnx --model {folder}' on a machine with it"
                ) from None
            export = export_model(Path(folder), progress=export_progress)
        return OnnxEngine(export, device=device)
    raise SprintError(f"unknown backend {backend!r}: choose torch or onnx")

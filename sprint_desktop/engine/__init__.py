"""Engines behind one interface: load a model, generate a request, report progress, cancel, close.

Importing this package is cheap: backends import torch/onnxruntime only when created.
"""

from .base import Engine, ModelInfo, Progress, ProgressCallback

__all__ = ["Engine", "ModelInfo", "Progress", "ProgressCallback", "create_engine"]


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

        from ..export.cache import find_export
        from .model_folder import inspect_model_folder
        from .onnx_backend import OnnxEngine

        folder = inspect_model_folder(model_path).path
        export = find_export(folder)
        if export is None:
            try:
                from ..export.onnx_export import export_model
            except ImportError:
                raise SprintError(
                    f"no ONNX export of {folder} yet, and exporting needs PyTorch: run "
                    f"'sprint export-onnx --model {folder}' on a machine with it"
                ) from None
            export = export_model(Path(folder), progress=export_progress)
        return OnnxEngine(export, device=device)
    raise SprintError(f"unknown backend {backend!r}: choose torch or onnx")

"""Engines behind one interface: load a model, generate a request, report progress, cancel, close.

Importing this package is cheap: backends import torch/onnxruntime only when created.
"""

from .base import Engine, ModelInfo, Progress, ProgressCallback

__all__ = ["Engine", "ModelInfo", "Progress", "ProgressCallback", "create_engine"]


def create_engine(model_path: str, backend: str = "torch", device: str | None = None, **kwargs) -> Engine:
    """Create (not yet load) the engine for ``backend`` over the model folder ``model_path``."""
    if backend == "torch":
        from .torch_backend import TorchEngine

        return TorchEngine(model_path, device=device, **kwargs)
    from ..core.errors import SprintError

    raise SprintError(
        f"unknown backend {backend!r}: choose 'torch' (the ONNX Runtime backend is not built yet)"
    )

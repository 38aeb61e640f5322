"""Engines behind one interface: load a model, generate a request, report progress, cancel, close.

Importing this package is cheap: backends import torch/onnxruntime only when created. Picking a
backend and wiring it up (GPU runtime, ONNX export on demand) is `sprint_desktop.factory`'s job.
"""

from .base import Engine, ModelInfo, Progress, ProgressCallback

__all__ = ["Engine", "ModelInfo", "Progress", "ProgressCallback"]

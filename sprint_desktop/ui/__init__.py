"""PySide6 user interface. Imports no torch/diffusers/transformers/onnxruntime: it reaches the
engine only through the worker thread (issue "The desktop app")."""

"""PySide6 user interface. Imports no torch/diffusers/transformers/onnxruntime: it reaches the
engine only through the worker thread (issue "The desktop app")."""

from .pyside_fix import guard_bools

guard_bools()  # before any signal: PySide6 6.12 drops a reference to True per signal (see pyside_fix)

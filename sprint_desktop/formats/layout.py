"""Which files make a model and its ONNX export: facts shared by the downloader, the model store,
the exporter and the ONNX Runtime backend."""

from __future__ import annotations

ALLOW_PATTERNS = [
    "model_index.json",
    "*/config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "scheduler/*.json",
    "tokenizer/*",
]
"""The files of a hub repository that a model folder needs (huggingface_hub ``allow_patterns``)."""

EXPORT_FORMAT = 2
"""The layout of an export's graphs (bumped when it changes): 2 = TrigFlow step graph with the
ControlNet's residual inputs, and a ``controlnet`` graph. `OnnxEngine` reads only this format."""

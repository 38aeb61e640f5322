"""ONNX export of each pipeline component, golden checks against PyTorch, the exported-model cache."""

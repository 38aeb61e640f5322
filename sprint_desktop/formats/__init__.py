"""Model-format facts every floor may read: what a SANA-Sprint model folder must hold
(`model_folder`) and the sane bounds of its configs (`config_bounds`), which files make a model and
its ONNX export (`layout`), the configs of the architectures built with random weights
(`architectures`). Pure Python: no torch, no Qt, no onnxruntime; imports only `core`."""

"""Our PyTorch engine on a CUDA device gives the CPU's images (run by the GPU run's check section:
``pytest -m gpu``; skipped where there is no CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.torch_backend import TorchEngine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

REQUESTS = [
    GenerateRequest("a red circle left of a blue square", steps=1, seed=3),
    GenerateRequest("a red circle left of a blue square", steps=4, seed=4, batch_size=2),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=["1step", "4steps-batch2"])
def test_cuda_fp32_and_bf16_follow_the_cpu(tiny_model_dir, tiny_engine, request_):
    cpu = np.stack(tiny_engine.generate(request_).images).astype(np.float64)
    for dtype, mean_tol in (("fp32", 0.5), ("bf16", 4.0)):
        engine = TorchEngine(tiny_model_dir, device="cuda", dtype=dtype)
        info = engine.load()
        assert info.device.startswith("cuda")
        gpu = np.stack(engine.generate(request_).images).astype(np.float64)
        assert gpu.shape == cpu.shape
        # uint8 images: fp32 (TF32 convolutions) within a level on average, bf16 within a few
        assert np.abs(gpu - cpu).mean() < mean_tol, dtype
        engine.close()

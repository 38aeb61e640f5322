"""The ONNX Runtime denoise loop through IO binding against the plain ``session.run`` loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sprint_desktop.core.noise import draw_noise
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.onnx_backend import OnnxEngine

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _sketch():
    img = np.full((32, 32, 3), 255, np.uint8)
    img[4:28, 16] = img[16, 4:28] = 0
    return img


def _latents(engine, request):
    request = engine.resolve(request)
    noise = np.stack(
        [draw_noise(s, engine.latent_shape(request), request.steps) for s in request.seeds], axis=1
    )
    return engine.denoise(request, *engine.encode_prompt(request.prompt)[:2], noise)


REQUESTS = [
    GenerateRequest("a green cross", steps=1, seed=1),
    GenerateRequest("a green cross", steps=4, seed=2, batch_size=2),
    GenerateRequest("a green cross", steps=2, seed=3, control_image=_sketch(), control_scale=0.5),
    GenerateRequest("a green cross", steps=3, seed=4, control_image=_sketch(), batch_size=2),
]


def test_io_binding_is_on_by_default_only_for_cuda(export):
    default = OnnxEngine(export, device="cpu")
    default.load()
    assert not default.io_binding
    engine = OnnxEngine(export, device="cpu", io_binding=True)
    engine.load()
    assert engine.io_binding and engine.ort_device == "cpu"


@pytest.mark.parametrize("request_", REQUESTS, ids=["1step", "4steps-batch2", "sketch", "sketch-batch2"])
@pytest.mark.parametrize("with_controlnet", [False, True], ids=["img2img-model", "controlnet-model"])
def test_io_binding_gives_exactly_the_session_run_outputs(
    export, controlnet_model, request_, with_controlnet
):
    """On the CPU provider both loops run the same graphs on the same kernels: bit-identical."""
    folder = controlnet_model.export if with_controlnet else export
    bound = OnnxEngine(folder, device="cpu", io_binding=True)
    plain = OnnxEngine(folder, device="cpu", io_binding=False)
    a, b = _latents(bound, request_), _latents(plain, request_)
    assert a.shape == (request_.batch_size, 4, 16, 16)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bound.generate(request_).images[0], plain.generate(request_).images[0])


@pytest.mark.gpu
@pytest.mark.skipif(
    ort.get_device() != "GPU" or "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu with the CUDA provider",
)
@pytest.mark.parametrize("sketch", [False, True])
def test_cuda_provider_with_io_binding(controlnet_model, controlnet_engine, sketch):
    engine = OnnxEngine(controlnet_model.export, device="cuda")
    info = engine.load()
    assert info.device in ("cuda", "tensorrt") and engine.io_binding and engine.ort_device == "cuda"
    assert not engine.notices  # no silent fall back to the CPU
    request = GenerateRequest(
        "a red square", steps=2, seed=6, control_image=_sketch() if sketch else None, control_scale=0.8
    )
    bound = _latents(engine, request)
    engine.io_binding = False
    plain = _latents(engine, request)
    np.testing.assert_allclose(bound, plain, atol=1e-5, rtol=0)
    with torch.inference_mode():
        ref = _latents(controlnet_engine, request).cpu().numpy()
    assert np.abs(bound - ref).max() < 1e-3


def test_backend_bench_times_both_onnx_loops(controlnet_model, tiny_model_dir, tmp_path, monkeypatch):
    from sprint_desktop.core.errors import SprintError
    from sprint_desktop.devtools.bench import run_backend_bench

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(SprintError, match="needs a model with a ControlNet"):
        run_backend_bench(tiny_model_dir, [1], repeats=1, warmup=0, size=None, control=True)
    report = run_backend_bench(controlnet_model.path, [1], repeats=1, warmup=0, size=None, control=True)
    row = report["results"]["1"]
    assert {"torch", "onnx", "onnx_iobinding", "ratio_onnx_vs_torch", "ratio_iobinding_vs_run"} <= set(row)
    assert report["control"] and "IO binding / run" in report["table"]
    assert row["ratio_onnx_control_vs_plain"] > 0 and "ControlNet / plain" in report["table"]

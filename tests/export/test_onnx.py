"""ONNX export, the exported-model cache and the ONNX Runtime backend against the PyTorch one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sprint_desktop.core.errors import SprintError
from sprint_desktop.core.noise import draw_noise
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.onnx_backend import OnnxEngine, choose_providers
from sprint_desktop.export.cache import find_export, is_complete
from sprint_desktop.export.onnx_export import export_model, golden_check

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _sketch():
    img = np.full((32, 32, 3), 255, np.uint8)
    img[6:26, 6] = img[6:26, 25] = img[6, 6:26] = img[25, 6:26] = 20
    return img


def test_export_is_complete_cached_and_found(export, tiny_model_dir, cache):
    assert is_complete(export)
    names = sorted(p.name for p in export.glob("*.onnx"))
    assert names == ["text_encoder.onnx", "transformer.onnx", "vae_decoder.onnx", "vae_encoder.onnx"]
    mtime = (export / "transformer.onnx").stat().st_mtime_ns
    assert export_model(tiny_model_dir, cache_root=cache) == export
    assert (export / "transformer.onnx").stat().st_mtime_ns == mtime  # reused, not exported again
    assert find_export(tiny_model_dir, root=cache) == export


def test_corrupt_export_is_rebuilt(tiny_model_dir, tmp_path):
    folder = export_model(tiny_model_dir, cache_root=tmp_path)
    (folder / "vae_decoder.onnx").write_bytes(b"broken")
    assert not is_complete(folder) and find_export(tiny_model_dir, root=tmp_path) is None
    again = export_model(tiny_model_dir, cache_root=tmp_path)
    assert is_complete(again)


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("with_sketch", [False, True])
def test_onnx_matches_pytorch(export, tiny_engine, steps, with_sketch):
    onnx = OnnxEngine(export, device="cpu")
    req = GenerateRequest(
        "a large red circle above a blue square",
        steps=steps,
        seed=11,
        control_image=_sketch() if with_sketch else None,
    )
    req_t, req_o = tiny_engine.resolve(req), onnx.resolve(req)
    noise = np.stack([draw_noise(s, tiny_engine.latent_shape(req_t), steps) for s in req_t.seeds], axis=1)
    e_t, m_t, _, _ = tiny_engine.encode_prompt(req.prompt)
    with torch.inference_mode():
        ref = tiny_engine.decode(tiny_engine.denoise(req_t, e_t, m_t, noise))
    e_o, m_o, _, _ = onnx.encode_prompt(req.prompt)
    out = onnx.decode(onnx.denoise(req_o, e_o, m_o, noise))
    assert out.shape == ref.shape == (1, 32, 32, 3)
    assert np.abs(out - ref).max() < 1e-3
    a, b = onnx.generate(req), tiny_engine.generate(req)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    assert a.request.backend == "onnx"


def test_onnx_prompt_cache_and_truncation(export):
    onnx = OnnxEngine(export, device="cpu")
    onnx.generate(GenerateRequest("a red circle", steps=1))
    assert onnx.generate(GenerateRequest("A Red Circle ", steps=1)).prompt_cache_hit
    assert onnx.text_encoder_calls == 1
    r = onnx.generate(GenerateRequest("red " * 400, steps=1))
    assert any("longer than 300 tokens" in w for w in r.warnings)


def test_zero_inputs_stay_finite(export):
    """All-zero latents make the linear attention's ReLU kernels zero: the denominator's epsilon
    must survive export (no NaN)."""
    onnx = OnnxEngine(export, device="cpu")
    onnx.load()
    x0, x_next = onnx.sessions["transformer"].run(
        None,
        {
            "x_t": np.zeros((1, 4, 16, 16), np.float32),
            "t": np.array([1.0], np.float32),
            "encoder_hidden_states": np.zeros((1, 300, 32), np.float32),
            "encoder_attention_mask": np.ones((1, 300), np.int64),
            "guidance": np.array([0.45], np.float32),
            "z_next": np.zeros((1, 4, 16, 16), np.float32),
            "t_next": np.array([0.5], np.float32),
        },
    )
    assert np.isfinite(x0).all() and np.isfinite(x_next).all()


def test_golden_check_catches_a_mismatch(tmp_path):
    lin = torch.nn.Linear(3, 2)
    torch.onnx.export(
        lin,
        (torch.randn(1, 3),),
        str(tmp_path / "l.onnx"),
        dynamo=False,
        opset_version=18,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}},
    )
    golden_check(tmp_path / "l.onnx", lin, ["x"], [(torch.randn(2, 3),)], tol=1e-5)
    other = torch.nn.Linear(3, 2)
    with pytest.raises(SprintError, match="differs from PyTorch"):
        golden_check(tmp_path / "l.onnx", other, ["x"], [(torch.randn(2, 3),)], tol=1e-5)


def test_provider_order_and_cpu_choice():
    available = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert choose_providers(None, available) == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers("cpu", available) == ["CPUExecutionProvider"]
    assert choose_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_onnx_backend_runs_without_torch(export, tmp_path):
    """The ONNX Runtime backend in a process where `import torch` fails."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        from sprint_desktop.engine.onnx_backend import OnnxEngine
        from sprint_desktop.core.request import GenerateRequest
        r = OnnxEngine({str(export)!r}, device="cpu").generate(GenerateRequest("a red circle", steps=2, seed=1))
        assert r.image.shape == (32, 32, 3)
        import importlib.util
        print("ok", sorted(m for m in sys.modules if m.startswith(("torch", "diffusers", "transformers")) and sys.modules[m] is not None))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok []"


def test_cli_generate_with_onnx_backend(tiny_model_dir, tmp_path, monkeypatch):
    from sprint_desktop.cli import main
    from sprint_desktop.core.metadata import read_png_params

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["export-onnx", "--model", str(tiny_model_dir)]) == 0
    out = tmp_path / "o.png"
    assert (
        main(
            [
                "generate",
                "a red circle",
                "--model",
                str(tiny_model_dir),
                "--backend",
                "onnx",
                "--seed",
                "4",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert read_png_params(out)["backend"] == "onnx"


def test_fp16_export_matches_pytorch_within_2e2(tiny_model_dir, tiny_engine, tmp_path):
    """fp16 is exported from the half-precision model (PyTorch's fp32 islands survive)."""
    export16 = export_model(tiny_model_dir, precision="fp16", cache_root=tmp_path)
    onnx = OnnxEngine(export16, device="cpu")
    assert onnx.info.dtype == "fp16"
    for steps in (1, 4):
        req = tiny_engine.resolve(GenerateRequest("a red circle left of a blue square", steps=steps, seed=3))
        noise = np.stack([draw_noise(s, tiny_engine.latent_shape(req), steps) for s in req.seeds], axis=1)
        with torch.inference_mode():
            ref = tiny_engine.decode(
                tiny_engine.denoise(req, *tiny_engine.encode_prompt(req.prompt)[:2], noise)
            )
        out = onnx.decode(onnx.denoise(onnx.resolve(req), *onnx.encode_prompt(req.prompt)[:2], noise))
        assert np.abs(out - ref).max() < 2e-2

"""Execution providers best first, and a failing one falls back with a notice (issue #12)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sprint_desktop.core.paths import project_root

ort = pytest.importorskip("onnxruntime")


def test_a_broken_tensorrt_rtx_plugin_falls_back_with_a_notice(export, tmp_path):
    """A TensorRT-RTX plugin package whose library does not load (here: not a library at all): the
    model opens on the next provider, the engine says so in its notices, and it generates."""
    plugin = tmp_path / "site" / "onnxruntime_ep_nv_tensorrt_rtx"
    plugin.mkdir(parents=True)
    (plugin / "libonnxruntime_providers_nv_tensorrt_rtx.so").write_bytes(b"not a library" * 100)
    (plugin / "__init__.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            def get_ep_name():
                return "NvTensorRTRTXExecutionProvider"
            def get_library_path():
                return str(Path(__file__).with_name("libonnxruntime_providers_nv_tensorrt_rtx.so"))
            """
        )
    )
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        from sprint_desktop.core.request import GenerateRequest
        from sprint_desktop.engine.onnx_backend import OnnxEngine
        engine = OnnxEngine({str(export)!r})
        info = engine.load()
        result = engine.generate(GenerateRequest("a red circle", seed=1))
        print(info.device)
        print(" | ".join(engine.notices))
        print(int(result.image.std() > 0))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(project_root()), str(tmp_path / "site")])},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    device, notices, image = proc.stdout.strip().splitlines()[-3:]
    assert device == "cpu"
    assert "TensorRT-RTX plugin could not be registered" in notices
    assert "using the next execution provider" in notices
    assert image == "1"


def test_a_provider_that_fails_to_open_falls_back_to_the_next(export):
    from sprint_desktop.engine.providers import Attempt, open_sessions

    def broken(options):
        raise RuntimeError("engine build ran out of memory\nmore detail")

    notices: list[str] = []
    files = {"vae_decoder": str(export / "vae_decoder.onnx")}
    tries = [Attempt("TensorRT-RTX", broken), Attempt("CPU", lambda o: ["CPUExecutionProvider"])]
    sessions = open_sessions(ort, files, ort.SessionOptions, tries, notices)
    assert sessions["vae_decoder"].get_providers() == ["CPUExecutionProvider"]
    assert notices == ["TensorRT-RTX failed (engine build ran out of memory); falling back to CPU"]
    out = sessions["vae_decoder"].run(None, {"latent": np.zeros((1, 4, 4, 4), np.float32)})[0]
    assert np.isfinite(out).all()


def test_without_the_plugin_the_order_is_unchanged(export):
    from sprint_desktop.engine.providers import attempts

    tries, notices = attempts(ort, None, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert [t.label for t in tries] == ["CUDA / CPU", "CPU"]
    assert notices == []
    tries, _ = attempts(ort, "cpu", ["CPUExecutionProvider"])
    assert [t.label for t in tries] == ["CPU"]


def test_the_text_encoder_moves_to_the_cpu_when_the_weights_do_not_fit():
    from sprint_desktop.engine.providers import text_encoder_on_cpu

    gb = 2**30
    sana_06b = {"text_encoder": int(10.4 * gb), "transformer": int(1.2 * gb), "vae_decoder": int(0.6 * gb)}
    assert text_encoder_on_cpu(8 * gb, sana_06b)
    assert text_encoder_on_cpu(12 * gb, sana_06b)
    assert not text_encoder_on_cpu(16 * gb, sana_06b)
    assert not text_encoder_on_cpu(None, sana_06b)  # no NVIDIA GPU found: nothing to decide


def test_the_text_encoder_can_be_put_on_the_cpu(export):
    from sprint_desktop.engine.onnx_backend import OnnxEngine

    engine = OnnxEngine(export, device="cpu", text_encoder_device="cpu")
    engine.load()
    assert engine.sessions["text_encoder"].get_providers() == ["CPUExecutionProvider"]
    from sprint_desktop.core.request import GenerateRequest

    assert engine.generate(GenerateRequest("a red circle")).image.std() > 0

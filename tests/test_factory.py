"""Which backend runs: the one asked for when its runtime imports, else the other with a notice,
else a message that says neither can run. Missing runtimes are simulated in fresh interpreters by
``sys.modules[name] = None`` (then ``import name`` raises ImportError, as when it is not installed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sprint_desktop.core.errors import SprintError
from sprint_desktop.factory import choose_backend


def _choose_without(blocked: list[str], preferred: str) -> dict:
    code = f"""
import json, sys
sys.modules.update(dict.fromkeys({blocked!r}))
from sprint_desktop.core.errors import SprintError
from sprint_desktop.factory import choose_backend
try:
    backend, notice = choose_backend({preferred!r})
    print(json.dumps({{"backend": backend, "notice": notice}}))
except SprintError as exc:
    print(json.dumps({{"error": str(exc)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_requested_backend_runs_when_it_imports():
    pytest.importorskip("onnxruntime")
    assert choose_backend("torch") == ("torch", None)
    assert choose_backend("onnx") == ("onnx", None)


def test_without_torch_onnx_runtime_runs_with_a_notice():
    pytest.importorskip("onnxruntime")
    out = _choose_without(["torch"], "torch")
    assert out["backend"] == "onnx"
    assert out["notice"].startswith("PyTorch is not available") and "using ONNX Runtime" in out["notice"]


def test_without_onnx_runtime_pytorch_runs():
    out = _choose_without(["onnxruntime"], "onnx")
    assert out["backend"] == "torch" and "ONNX Runtime is not available" in out["notice"]


def test_neither_runtime_is_a_clear_error():
    out = _choose_without(["torch", "onnxruntime"], "torch")
    assert out["error"].startswith("Neither PyTorch nor ONNX Runtime can be loaded")
    assert "(torch: import of torch halted" in out["error"] and "; onnxruntime: import of" in out["error"]


def test_an_unknown_backend_is_refused():
    with pytest.raises(SprintError, match="unknown backend 'tensorflow'"):
        choose_backend("tensorflow")


def _auto_in_a_fresh_process(model, env_cache, blocked=("torch",)) -> dict:
    """``choose_backend("auto")`` in an interpreter where ``blocked`` cannot be imported; also says
    whether torch got imported on the way."""
    code = f"""
import json, sys
sys.modules.update(dict.fromkeys({list(blocked)!r}))
from sprint_desktop.factory import choose_backend
backend, notice = choose_backend("auto", {str(model)!r}, "cpu")
print(json.dumps({{"backend": backend, "notice": notice, "torch": sys.modules.get("torch") is not None}}))
"""
    import os

    env = {**os.environ, "XDG_CACHE_HOME": str(env_cache)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_auto_starts_on_a_shipped_export_without_importing_torch(shipped_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    out = _auto_in_a_fresh_process(shipped_model_dir, tmp_path / "empty-cache", blocked=())
    assert out == {"backend": "onnx", "notice": None, "torch": False}


def test_auto_uses_a_cached_export(tiny_model_dir, shipped_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    # The shipped copy keeps the tiny model's modification times, so its export is one of the tiny
    # model as the cache holds it (found by name and fingerprint).
    shutil.copytree(
        shipped_model_dir / "onnx", tmp_path / "cache" / "SprintDesktop" / "onnx" / "tiny-sprint-fp32-x"
    )
    assert _auto_in_a_fresh_process(tiny_model_dir, tmp_path / "cache", blocked=())["backend"] == "onnx"


def test_auto_without_an_export_is_pytorch(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    assert choose_backend("auto", tiny_model_dir, "cpu") == ("torch", None)
    assert choose_backend("auto") == ("torch", None)  # no model to look at


def test_auto_without_an_export_or_torch_says_so(tiny_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    out = _auto_in_a_fresh_process(tiny_model_dir, tmp_path / "empty-cache")
    assert out["backend"] == "onnx" and out["notice"].startswith("PyTorch is not available")

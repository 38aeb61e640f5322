"""Which backend runs: the one asked for when its runtime imports, else the other with a notice,
else a message that says neither can run. Missing runtimes are simulated in fresh interpreters by
``sys.modules[name] = None`` (then ``import name`` raises ImportError, as when it is not installed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sprint_desktop.core.errors import SprintError
from sprint_desktop.engine import choose_backend


def _choose_without(blocked: list[str], preferred: str) -> dict:
    code = f"""
import json, sys
sys.modules.update(dict.fromkeys({blocked!r}))
from sprint_desktop.core.errors import SprintError
from sprint_desktop.engine import choose_backend
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

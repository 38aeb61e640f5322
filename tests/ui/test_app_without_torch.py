"""The app as packaged: no PyTorch in the process, the model's shipped ONNX export: with the default
backend ("auto") it starts on ONNX Runtime, with "torch" asked for it falls back to ONNX Runtime
and says so; either way it passes its self-test and keeps onnx images."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from sprint_desktop.core.metadata import read_png_params

NO_TORCH_APP = """
import sys
sys.modules["torch"] = None  # `import torch` raises ImportError
from sprint_desktop.ui.app import main
sys.exit(main(sys.argv[1:]))
"""


def _env(tmp_path):
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "c"),
        "XDG_DATA_HOME": str(tmp_path / "d"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_self_test_without_torch_uses_the_shipped_export(shipped_model_dir, tmp_path, backend):
    if backend != "auto":
        settings = tmp_path / "c" / "SprintDesktop" / "settings.json"
        settings.parent.mkdir(parents=True)
        settings.write_text(json.dumps({"version": 1, "settings": {"backend": backend}}))
    out = tmp_path / "shot.png"
    args = ["--self-test", str(out), "--model", str(shipped_model_dir)]
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH_APP, *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "self-test passed" in proc.stdout
    # "auto" goes straight to the export; an explicit "torch" falls back and the fallback is logged.
    assert ("PyTorch is not available" in proc.stderr) == (backend == "torch")
    kept = sorted((tmp_path / "d").rglob("*.png"))
    assert len(kept) == 3  # the prompt's image, the sketch's, and the prompt with unknown words
    for path in kept:
        assert read_png_params(path)["backend"] == "onnx"
        with Image.open(path) as im:
            assert im.size == (32, 32)
    assert Image.open(out).size[0] > 600


def test_without_any_runtime_the_app_says_so(tiny_model_dir, tmp_path):
    code = NO_TORCH_APP.replace(
        'sys.modules["torch"] = None', "sys.modules.update(torch=None, onnxruntime=None)"
    )
    args = ["--self-test", str(tmp_path / "x.png"), "--model", str(tiny_model_dir), "--timeout", "120"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=_env(tmp_path), timeout=300
    )
    assert proc.returncode == 1
    assert "Neither PyTorch nor ONNX Runtime can be loaded" in proc.stderr

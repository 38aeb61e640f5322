from __future__ import annotations

import os
import subprocess
import sys

from PIL import Image


def test_self_test_writes_a_screenshot(tiny_model_dir, tmp_path):
    out = tmp_path / "shot.png"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "c"),
        "XDG_DATA_HOME": str(tmp_path / "d"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sprint_desktop.ui.app",
            "--self-test",
            str(out),
            "--model",
            str(tiny_model_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "self-test passed" in proc.stdout
    assert Image.open(out).size[0] > 600


def test_self_test_fails_clearly_without_a_model(tmp_path):
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "c"),
        "XDG_DATA_HOME": str(tmp_path / "d"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sprint_desktop.ui.app",
            "--self-test",
            str(tmp_path / "x.png"),
            "--model",
            str(tmp_path / "missing"),
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "model folder not found" in proc.stderr.lower()

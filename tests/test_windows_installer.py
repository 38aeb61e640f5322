"""The Windows installer script compiles here (makensis from Debian's nsis) against a stand-in bundle."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "packaging" / "windows" / "sprint-desktop.nsi"


@pytest.mark.skipif(
    shutil.which("makensis") is None, reason="makensis is not installed (Debian: apt-get install nsis)"
)
def test_the_nsis_script_compiles_to_an_installer(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "packaging" / "windows" / "check.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (setup,) = tmp_path.glob("sprint-desktop-*-windows-x64-setup.exe")
    assert setup.read_bytes()[:2] == b"MZ" and setup.stat().st_size > 50_000


def test_the_installer_is_per_user_and_keeps_user_data_by_default():
    text = SCRIPT.read_text()
    assert "RequestExecutionLevel user" in text and "HKLM" not in text
    assert 'InstallDir "$LOCALAPPDATA\\Programs\\' in text
    assert 'Section /o "un.My images, settings and downloaded models"' in text  # unticked by default
    assert 'RMDir /r "$INSTDIR"' not in text  # never a recursive delete of a folder the user chose

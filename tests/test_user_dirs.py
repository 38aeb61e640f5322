"""The test run never touches the user's own cache, settings or gallery: platformdirs points into a
temporary folder for the whole session (tests/conftest.py), subprocesses included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REAL_USER_DIRS, TEST_HOME, user_dirs

# platformdirs reads XDG_* on Linux only; elsewhere the session-end check still reports writes.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="XDG folders are Linux's")


def test_every_user_folder_is_temporary_in_and_out_of_process():
    code = (
        "from sprint_desktop.core.paths import *; print(user_cache_dir(), user_config_dir(), user_data_dir())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    for folder in [*user_dirs(), *map(Path, out.stdout.split())]:
        assert folder.is_relative_to(TEST_HOME), folder
        assert not any(folder.is_relative_to(real) for real in REAL_USER_DIRS)


def test_a_verification_stamp_goes_to_the_temporary_cache(shipped_model_dir):
    from sprint_desktop.export.cache import export_files_verified, verified_root

    assert export_files_verified(shipped_model_dir / "onnx")  # no stamps= given: the user cache
    assert verified_root().is_relative_to(TEST_HOME) and any(verified_root().glob("*.json"))

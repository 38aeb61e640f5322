"""Shared fixtures: a tiny real SANA-Sprint pipeline saved in diffusers layout, loaded like a real model."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sprint_desktop.core.paths import user_cache_dir, user_config_dir, user_data_dir

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def user_dirs() -> list[Path]:
    """The app's cache, config and data folders as platformdirs gives them now."""
    return [user_cache_dir(), user_config_dir(), user_data_dir()]


def _snapshot(folders: list[Path]) -> dict[str, tuple[int, int]]:
    """Every file under ``folders``: path -> (size, modification time)."""
    files: dict[str, tuple[int, int]] = {}
    for folder in folders:
        for parent, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(parent, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                files[path] = (st.st_size, st.st_mtime_ns)
    return files


# Empty user folders for the whole run, in and out of process (subprocesses inherit them): the
# backend "auto" starts on ONNX Runtime when it finds an export in the cache, a verified shipped
# export leaves a stamp there, and the settings and the gallery live in the config and data folders;
# none of the user's own may change a test, and no test may write into them (checked at the end).
REAL_USER_DIRS = user_dirs()
_BEFORE = _snapshot(REAL_USER_DIRS)
TEST_HOME = Path(tempfile.mkdtemp(prefix="sprint-test-home-"))
for _var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
    os.environ[_var] = str(TEST_HOME / _var.lower())

import pytest  # noqa: E402

_RUN_MARKS = [str(TEST_HOME) + os.sep]
"""Paths only this run writes under: the temporary user folders and pytest's base temp folder."""


@pytest.fixture(scope="session", autouse=True)
def _this_runs_folders(tmp_path_factory):
    _RUN_MARKS.append(str(tmp_path_factory.getbasetemp()) + os.sep)  # not pytest-12 for pytest-123


def _names_this_run(path: str) -> bool:
    """``path``, or its content (up to 1 MB), names a folder of this run: a stamp of a verified
    export, an export's manifest, anything a test made from its own files."""
    marks = [m.encode() for m in _RUN_MARKS]
    try:
        with open(path, "rb") as fh:
            data = path.encode() + fh.read(1 << 20)
    except OSError:
        return False
    return any(m in data for m in marks)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a file under the user's real app folders was created or changed while it
    ran and names this run's folders (a test or a subprocess that did not get the temporary ones).
    Other changes there are only reported: on a shared machine the app or `sprint` may be running
    beside the tests."""
    after = _snapshot(REAL_USER_DIRS)
    changed = sorted(p for p, stat in after.items() if _BEFORE.get(p) != stat)
    ours = [p for p in changed if _names_this_run(p)]
    shutil.rmtree(TEST_HOME, ignore_errors=True)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if ours:
        message = f"ERROR: the tests wrote {len(ours)} file(s) into the real user folders, e.g. {ours[0]}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif changed:
        message = (
            f"note: {len(changed)} file(s) under the real user folders changed during the run, none "
            f"naming this run's folders (another program?), e.g. {changed[0]}"
        )
    else:
        return
    if reporter is not None:
        reporter.write_line(message, red=bool(ours), yellow=not ours)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SANA-Sprint pipeline (real diffusers/transformers classes, seed 0) on disk."""
    from sprint_desktop.devtools.builders import save_pipeline, tiny_pipeline

    path = tmp_path_factory.mktemp("models") / "tiny-sprint"
    save_pipeline(tiny_pipeline(seed=0), path)
    return path


@pytest.fixture
def hub_online(monkeypatch):
    """The suite runs with HF_HUB_OFFLINE=1; a test that talks to the loopback hub turns it off."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    from sprint_desktop.engine.torch_backend import TorchEngine

    engine = TorchEngine(tiny_model_dir, device="cpu")
    engine.load()
    return engine


@pytest.fixture(scope="session")
def shipped_model_dir(tiny_model_dir, tmp_path_factory):
    """A copy of the tiny model that ships its ONNX export inside it (``<model>/onnx/``), as the
    packaged app's embedded model does (packaging/stage_model.py)."""
    import shutil

    from sprint_desktop.export.onnx_export import export_model

    root = tmp_path_factory.mktemp("shipped")
    model = root / "tiny-sprint"
    shutil.copytree(tiny_model_dir, model)  # copy2: weights keep their mtimes, which the fingerprint reads
    shutil.copytree(export_model(model, cache_root=root / "cache"), model / "onnx")
    shutil.rmtree(root / "cache")
    return model

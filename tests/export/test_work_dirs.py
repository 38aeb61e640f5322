"""Work folders of exports and bindings: removed when their process is gone (or nothing was written
in them for a day), never while their process runs; published by one rename, the first one kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sprint_desktop.export.work_dirs import (
    STALE_AFTER_S,
    host_tag,
    make_work_dir,
    pid_alive,
    publish,
    remove_stale,
)

PREFIX = ".export-"


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def _folder(parent, name, age_s: float = 0):
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "text_encoder.onnx").write_bytes(b"half")
    if age_s:
        past = time.time() - age_s
        for path in (folder / "text_encoder.onnx", folder):
            os.utime(path, (past, past))
    return folder


def test_a_work_folder_is_named_for_its_process(tmp_path):
    work = make_work_dir(tmp_path / "cache", PREFIX)
    assert work.name.startswith(f"{PREFIX}{host_tag()}-{os.getpid()}-") and work.is_dir()
    assert pid_alive(os.getpid()) and not pid_alive(_dead_pid())


def test_only_the_folders_of_gone_processes_and_old_ones_are_removed(tmp_path, live_pid):
    host = host_tag()
    dead = _folder(tmp_path, f"{PREFIX}{host}-{_dead_pid()}-abc")
    live = _folder(tmp_path, f"{PREFIX}{host}-{live_pid}-abc")
    mine = _folder(tmp_path, f"{PREFIX}{host}-{os.getpid()}-abc")
    other_host = _folder(tmp_path, f"{PREFIX}0badf00d-{_dead_pid()}-abc")  # a shared disk's: by age only
    unnamed = _folder(tmp_path, f"{PREFIX}k3j_x9q2")  # an older app's: by age only
    old = _folder(tmp_path, f"{PREFIX}x7f_2kq1", age_s=STALE_AFTER_S + 60)
    done = _folder(tmp_path, "tiny-fp32-0123")  # a finished export is not a work folder
    assert remove_stale(tmp_path, PREFIX) == sorted([dead, old])
    assert not dead.exists() and not old.exists()
    assert all(p.is_dir() for p in (live, mine, other_host, unnamed, done))


def test_publish_keeps_the_first_good_result(tmp_path):
    target = tmp_path / "tiny-fp32-0123"
    first = make_work_dir(tmp_path, PREFIX)
    (first / "manifest.json").write_text("first")
    assert publish(first, target, lambda t: True, PREFIX) == target
    inode = (target / "manifest.json").stat().st_ino
    second = make_work_dir(tmp_path, PREFIX)
    (second / "manifest.json").write_text("second")
    assert publish(second, target, lambda t: True, PREFIX) == target  # the loser uses the winner's
    assert (target / "manifest.json").read_text() == "first"
    assert (target / "manifest.json").stat().st_ino == inode and not second.exists()
    third = make_work_dir(tmp_path, PREFIX)
    (third / "manifest.json").write_text("third")
    assert publish(third, target, lambda t: False, PREFIX) == target  # a bad one is replaced
    assert (target / "manifest.json").read_text() == "third"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # nothing set aside is left


def test_an_export_removes_what_killed_exports_left(export, tiny_model_dir, live_pid):
    """A killed export's ``.export-*`` folder went unnoticed: the next export cleans it, and leaves
    the one of an export still running."""
    from sprint_desktop.export.onnx_export import export_model

    host = host_tag()
    killed = _folder(export.parent, f"{PREFIX}{host}-{_dead_pid()}-abc")
    running = _folder(export.parent, f"{PREFIX}{host}-{live_pid}-abc")
    assert export_model(tiny_model_dir, cache_root=export.parent) == export  # cached: no new export
    assert not killed.exists() and running.is_dir()

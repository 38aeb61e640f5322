"""The GPU runtime offer, offscreen, installing from a package index on 127.0.0.1; offered once."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
from PySide6.QtCore import Qt

from sprint_desktop.core.nvidia import NvidiaGpu
from sprint_desktop.store import gpu_runtime

from ..store.fake_index import FakeIndex
from ..store.test_gpu_runtime import index, write_spec  # noqa: F401 - the fixture

TIMEOUT = 60_000
GPU = NvidiaGpu("NVIDIA GeForce RTX 4090", 24564, "581.15", "nvidia-smi")


def make_dialog(qtbot, tmp_path, index, gpu=GPU):  # noqa: F811
    from sprint_desktop.ui.gpu_dialog import GpuRuntimeDialog

    dialog = GpuRuntimeDialog(gpu, spec=write_spec(tmp_path, index), root=tmp_path / "rt")
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_install_with_progress_then_remove(qtbot, tmp_path, index):  # noqa: F811
    dialog = make_dialog(qtbot, tmp_path, index)
    assert "RTX 4090" in dialog.message.text() and "CPU" in dialog.message.text()
    assert dialog.install_button.isEnabled() and not dialog.remove_button.isEnabled()
    with qtbot.waitSignal(dialog.installed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0].endswith("site")
    assert dialog.progress.value() == dialog.progress.maximum()
    assert "next model load" in dialog.status.text()
    assert dialog.install_button.text() == "Reinstall" and dialog.remove_button.isEnabled()
    dialog.remove()
    assert gpu_runtime.runtime_state(dialog.spec, dialog.root).state == "missing"


def test_stop_then_install_again_resumes(qtbot, tmp_path, index):  # noqa: F811
    index.bytes_per_second = 200_000
    dialog = make_dialog(qtbot, tmp_path, index)
    qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=TIMEOUT)
    qtbot.mouseClick(dialog.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "stopped" in dialog.status.text(), timeout=TIMEOUT)
    assert dialog.install_button.isEnabled() and not dialog.stop_button.isEnabled()
    index.bytes_per_second = 0
    with qtbot.waitSignal(dialog.installed, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    assert any(r for m, p, r in index.requests if m == "GET" and p.startswith("/files/") and r)


def test_a_dialog_let_go_mid_install_is_destroyed_on_the_gui_thread(qtbot, tmp_path, index):  # noqa: F811
    """A CI run segfaulted in pytest-qt's teardown: the install thread ran a method of the dialog,
    so once the test let go of the dialog that thread held its last reference, and when the thread
    ended Python destroyed the dialog and its widgets there while the GUI thread processed events.
    Here the download is held mid-file while the dialog is let go, then released."""
    from sprint_desktop.ui.gpu_dialog import GpuRuntimeDialog

    spec, root = write_spec(tmp_path, index), tmp_path / "rt"
    dialog = GpuRuntimeDialog(GPU, spec=spec, root=root)
    destroyed_on = []
    dialog.destroyed.connect(
        lambda *_: destroyed_on.append(threading.current_thread().name),
        Qt.ConnectionType.DirectConnection,
    )
    index.flowing.clear()
    dialog.start_install()
    thread = dialog.install_thread
    qtbot.waitUntil(lambda: any(p.startswith("/files/") for _, p, _ in index.requests), timeout=TIMEOUT)
    del dialog  # the window is gone while its install is mid-file
    index.flowing.set()
    thread.join(TIMEOUT / 1000)
    qtbot.wait(200)  # anything the thread left for the GUI thread arrives (and must find nothing)
    assert destroyed_on == [threading.current_thread().name]
    assert not thread.is_alive()
    state = gpu_runtime.runtime_state(spec, root)
    assert state.state == "partial"  # the destroyed dialog stopped the install; what came is kept
    dialog = make_dialog(qtbot, tmp_path, index)  # and the next install continues from it
    with qtbot.waitSignal(dialog.installed, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    assert any(r for m, p, r in index.requests if m == "GET" and p.startswith("/files/") and r)


def test_closing_mid_install_stops_it_and_keeps_what_came(qtbot, tmp_path, index):  # noqa: F811
    index.bytes_per_second = 200_000
    dialog = make_dialog(qtbot, tmp_path, index)
    qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    thread = dialog.install_thread
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=TIMEOUT)
    dialog.close()  # joins the thread, which stops at its next chunk
    assert not thread.is_alive() and "stopped" in dialog.status.text()
    assert dialog.install_button.isEnabled() and not dialog.stop_button.isEnabled()
    assert gpu_runtime.runtime_state(dialog.spec, dialog.root).state == "partial"


def test_a_probe_let_go_mid_detection_is_destroyed_on_the_gui_thread(qtbot, monkeypatch):
    """The probe's thread ran the probe's own method and emitted its signal: the same last
    reference as the install's, and a signal sent to an object that may be gone."""
    from sprint_desktop.ui import gpu_dialog

    asked, answer = threading.Event(), threading.Event()

    def slow_detect():
        asked.set()
        answer.wait(60)
        return GPU

    monkeypatch.setattr(gpu_dialog, "detect_nvidia_gpu", slow_detect)
    probe = gpu_dialog.GpuProbe()
    destroyed_on = []
    probe.destroyed.connect(
        lambda *_: destroyed_on.append(threading.current_thread().name),
        Qt.ConnectionType.DirectConnection,
    )
    probe.start()
    assert asked.wait(60)
    thread = probe.job.worker_thread
    del probe  # the window is gone while the probe waits for nvidia-smi
    answer.set()
    thread.join(60)
    qtbot.wait(200)  # anything the thread left for the GUI thread arrives (and must find nothing)
    assert destroyed_on == [threading.current_thread().name]


def test_a_failure_is_shown_and_says_the_app_stays_on_the_cpu(qtbot, tmp_path, index):  # noqa: F811
    index.altered.add(index.wheels[0])
    dialog = make_dialog(qtbot, tmp_path, index)
    qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "sha256" in dialog.status.text(), timeout=TIMEOUT)
    assert "CPU" in dialog.status.text() and dialog.install_button.isEnabled()


def test_an_old_driver_is_named_and_install_is_off(qtbot, tmp_path, index):  # noqa: F811
    old = NvidiaGpu("NVIDIA GeForce GTX 1080", 8192, "535.104.05", "/proc")
    dialog = make_dialog(qtbot, tmp_path, index, gpu=old)
    assert "535.104.05" in dialog.message.text() and "update the driver" in dialog.message.text()
    assert not dialog.install_button.isEnabled()


def test_without_an_nvidia_gpu_there_is_nothing_to_install(qtbot, tmp_path, index):  # noqa: F811
    """It showed an empty 0% bar and an offer to install on a machine with no NVIDIA GPU."""
    dialog = make_dialog(qtbot, tmp_path, index, gpu=None)
    assert "no NVIDIA GPU" in dialog.message.text() and "on the CPU" in dialog.message.text()
    assert not dialog.progress.isVisible() and not dialog.install_button.isVisible()
    assert not dialog.remove_button.isVisible() and dialog.close_button.text() == "Close"


@pytest.mark.skipif(sys.platform == "win32", reason="the nvidia-smi stand-in is a shell script")
def test_the_offer_is_shown_once_and_remembered(qtbot, tmp_path, monkeypatch, tiny_model_dir):
    """A start that finds a GPU offers the runtime and records it in settings.json; the next start
    does not ask again."""
    from sprint_desktop.core import nvidia
    from sprint_desktop.ui.main_window import MainWindow

    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text('#!/bin/sh\necho "NVIDIA GeForce RTX 4090, 24564, 581.15"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(nvidia, "from_nvml", lambda: None)  # a real GPU's NVML would answer first
    monkeypatch.setenv(gpu_runtime.ROOT_ENV, str(tmp_path / "rt"))
    monkeypatch.delenv("SPRINT_NO_GPU_OFFER", raising=False)
    config = tmp_path / "config"

    first = MainWindow(config_dir=config, data_dir=tmp_path / "data", model=str(tiny_model_dir))
    qtbot.addWidget(first)
    qtbot.waitUntil(lambda: first.gpu_dialog is not None, timeout=TIMEOUT)
    assert "RTX 4090" in first.gpu_dialog.message.text()
    assert json.loads((config / "settings.json").read_text())["settings"]["gpu_offer_shown"] is True
    first.close()

    second = MainWindow(config_dir=config, data_dir=tmp_path / "data", model=str(tiny_model_dir))
    qtbot.addWidget(second)
    with qtbot.waitSignal(second.gpu_probe.found, timeout=TIMEOUT) as found:
        pass  # the probe's result arrives through the event loop, after the window's own slot ran
    assert found.args[0].name == "NVIDIA GeForce RTX 4090"
    assert second.gpu_dialog is None and second.workspace.settings.gpu_offer_shown
    second.close()


def test_no_offer_without_a_gpu():
    from sprint_desktop.ui.gpu_dialog import should_offer

    missing = gpu_runtime.RuntimeState("missing", gpu_runtime.runtime_root())
    installed = gpu_runtime.RuntimeState("installed", gpu_runtime.runtime_root())
    assert should_offer(GPU, False, missing)
    assert not should_offer(None, False, missing)
    assert not should_offer(GPU, True, missing)
    assert not should_offer(GPU, False, installed)


def test_fake_index_is_loopback_only():
    with FakeIndex() as idx:
        assert idx.url.startswith("http://127.0.0.1:")

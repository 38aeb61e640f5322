"""File ▸ Models against a loopback hub: download with progress, stop and resume, use, remove."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt

from ..store.fake_hub import FakeHub, use_hub_catalog

TIMEOUT = 60_000


@pytest.fixture
def hub_catalog(tmp_path, monkeypatch, tiny_model_dir, hub_online):
    use_hub_catalog(monkeypatch, tmp_path)
    with FakeHub("org/tiny", tiny_model_dir) as hub:
        yield hub


def test_download_progress_use_and_remove(qtbot, hub_catalog, tmp_path):
    from sprint_desktop.ui.models_dialog import ModelManagerDialog

    dialog = ModelManagerDialog(endpoint=hub_catalog.url)
    qtbot.addWidget(dialog)
    assert dialog.table.item(0, 1).text() == "missing"
    chosen = []
    dialog.model_chosen.connect(chosen.append)
    dialog.use_selected()
    assert "download it first" in dialog.status.text() and not chosen
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert "Apache-2.0" in dialog.status.text() and "0.01 GB" in dialog.status.text()
    assert not hub_catalog.requests  # nothing is fetched before the licence is accepted
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Ready for offline use" in dialog.status.text(), timeout=TIMEOUT)
    assert dialog.progress.value() == dialog.progress.maximum() > 0
    assert dialog.table.item(0, 1).text() == "installed"
    dialog.use_selected()
    assert chosen == [str(tmp_path / "store" / "tiny")]
    dialog.remove_selected()
    assert dialog.table.item(0, 1).text() == "missing"


def test_stop_keeps_finished_files_and_the_next_download_skips_them(
    qtbot, hub_catalog, monkeypatch, tmp_path
):
    """huggingface_hub 2.x resumes byte-wise only within one download (its retries); across runs
    it keeps every finished file, so a stopped download continues from the files it has."""
    from huggingface_hub import constants

    from sprint_desktop.ui.models_dialog import ModelManagerDialog

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    hub_catalog.bytes_per_second = 40_000  # about 6 s for the whole model
    dialog = ModelManagerDialog(endpoint=hub_catalog.url)
    qtbot.addWidget(dialog)
    dialog.start_download()  # shows the licence
    dialog.start_download()  # accepted
    folder = tmp_path / "store" / "tiny"
    # stop once a weights file is finished (a byte ratio could come before any file finished, as
    # it did under CI load with two files in flight)
    finished: list[str] = []

    def stop_after_a_file(report: tuple[int, int]) -> None:
        done = [p.relative_to(folder).as_posix() for p in folder.glob("**/*.safetensors")]
        if done and report[0] < report[1] and not finished:
            finished.extend(done)
            dialog.stop_download()

    dialog.job.progress.connect(stop_after_a_file)
    qtbot.waitUntil(lambda: dialog.stop_button.isEnabled() is False, timeout=TIMEOUT)
    assert "stopped" in dialog.status.text() and "resume" in dialog.status.text()
    hub_catalog.bytes_per_second = 0
    dialog.start_download()
    qtbot.waitUntil(lambda: "Ready for offline use" in dialog.status.text(), timeout=TIMEOUT)
    assert dialog.table.item(0, 1).text() == "installed"
    gets: dict[str, int] = {}
    for method, path, _ in hub_catalog.requests:
        if method == "GET" and path.endswith(".safetensors"):
            gets[path] = gets.get(path, 0) + 1
    assert len(gets) == 3 and finished
    fetched = {name: n for path, n in gets.items() for name in finished if path.endswith("/" + name)}
    assert fetched == dict.fromkeys(
        finished, 1
    )  # each file finished before the stop was kept, not fetched again


def test_speed_and_time_left_count_only_this_downloads_bytes(qtbot):
    """A resumed download's first report already holds the bytes it kept: they are not speed."""
    from sprint_desktop.ui.models_dialog import ModelManagerDialog

    dialog = ModelManagerDialog()
    qtbot.addWidget(dialog)
    mib = 2**20
    dialog._on_progress((60 * mib, 100 * mib))
    assert dialog.status.text() == "60.0 of 100.0 MB"  # no speed yet, not "0 s left"
    since, before = dialog.measured_from
    dialog.measured_from = (since - 10, before)  # 10 s ago
    dialog._on_progress((70 * mib, 100 * mib))
    assert dialog.status.text() == "70.0 of 100.0 MB · 1.0 MB/s · 30 s left"


def test_a_dialog_let_go_mid_download_is_destroyed_on_the_gui_thread(qtbot, hub_catalog, monkeypatch):
    """The download thread ran a method of the dialog, so the dialog outlived its window: here until
    a garbage collection (huggingface_hub's progress class, a cycle, held the thread's callback),
    and without such a cycle the thread would have dropped the last reference and destroyed the
    dialog on itself, as the GPU dialog's install did in a CI run that segfaulted."""
    from huggingface_hub import constants

    from sprint_desktop.ui.models_dialog import ModelManagerDialog

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    hub_catalog.bytes_per_second = 40_000  # about 6 s for the whole model
    dialog = ModelManagerDialog(endpoint=hub_catalog.url)
    destroyed_on = []
    dialog.destroyed.connect(
        lambda *_: destroyed_on.append(threading.current_thread().name),
        Qt.ConnectionType.DirectConnection,
    )
    dialog.start_download()  # shows the licence
    dialog.start_download()  # accepted
    thread = dialog.job.worker_thread
    qtbot.waitUntil(
        lambda: any(p.endswith(".safetensors") for m, p, _ in hub_catalog.requests if m == "GET"),
        timeout=TIMEOUT,
    )
    del dialog  # the window is gone mid-download
    thread.join(TIMEOUT / 1000)
    qtbot.wait(200)  # anything the thread left for the GUI thread arrives (and must find nothing)
    assert destroyed_on == [threading.current_thread().name] and not thread.is_alive()


def test_only_what_applies_is_enabled(qtbot):
    """The embedded model ships with the app: nothing to download or remove, but it can be used."""
    from sprint_desktop.ui.models_dialog import ModelManagerDialog

    dialog = ModelManagerDialog()
    qtbot.addWidget(dialog)
    embedded = [i for i, e in enumerate(dialog.entries) if e.kind == "embedded"]
    dialog.table.selectRow(embedded[0])
    assert not dialog.download_button.isEnabled() and not dialog.remove_button.isEnabled()
    assert dialog.use_button.isEnabled()

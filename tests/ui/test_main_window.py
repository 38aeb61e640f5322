"""The real window, offscreen, with the real worker and the tiny model (pytest-qt). The workspace's
logic is tested without a window in tests/workspace; these check that the panels are wired to it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QPushButton

from sprint_desktop.core.metadata import save_png
from sprint_desktop.core.paths import project_root
from sprint_desktop.core.settings import Settings
from sprint_desktop.core.vocabulary import read_vocabulary
from sprint_desktop.ui.main_window import MIN_SIZE, MainWindow

TIMEOUT = 60_000


@pytest.fixture
def make_window(qtbot, tmp_path, tiny_model_dir):
    windows = []

    def make(model=str(tiny_model_dir), wait=True):
        w = MainWindow(config_dir=tmp_path / "config", data_dir=tmp_path / "data", model=model)
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        if wait:
            qtbot.waitUntil(lambda: w.workspace.info is not None, timeout=TIMEOUT)
        return w

    yield make
    for w in windows:
        if w.isVisible():
            w.close()


def test_enter_in_the_prompt_shows_an_image_and_keep_fills_the_strip(make_window, qtbot):
    w = make_window()
    panel, ws = w.prompt_panel, w.workspace
    assert panel.generate_button.isEnabled() and "tiny-sprint" in w.statusBar().model_label.text()
    panel.steps.setValue(1)
    panel.prompt.setPlainText("a red circle")
    qtbot.keyClick(panel.prompt, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: ws.prompt_result is not None, timeout=TIMEOUT)
    assert w.preview.image() is not None and w.preview.image().width() == 32
    assert ws.prompt_result.request.prompt == "a red circle" and ws.prompt_result.request.steps == 1
    assert panel.seed.text() == str(ws.prompt_result.request.seed)  # the random seed is shown
    assert "ms" in w.statusBar().latency_label.text()
    assert panel.prompt.toPlainText() == "a red circle"  # Enter did not add a newline
    qtbot.mouseClick(panel.keep_button, Qt.MouseButton.LeftButton)
    assert w.strip.count() == 1


def test_the_live_canvas_follows_a_stroke_and_clear_drops_its_image(make_window, qtbot):
    w = make_window()
    ws = w.workspace
    w.prompt_panel.prompt.setPlainText("a purple triangle")
    w.tabs.setCurrentIndex(1)
    w.canvas_panel.set_live(True)
    w.draw_stroke([(4, 4), (20, 20)])
    qtbot.waitUntil(
        lambda: ws.live_result is not None and ws.live_result.request.control_digest is not None,
        timeout=TIMEOUT,
    )
    assert w.canvas_panel.live_view.image() is not None
    w.canvas_panel.canvas.clear()
    assert w.canvas_panel.live_view.image() is None  # at once, not when the next image comes
    qtbot.waitUntil(lambda: ws.live_result is not None, timeout=TIMEOUT)
    assert ws.live_result.request.control_image is None


def test_a_bad_model_folder_is_explained_and_another_one_works(make_window, qtbot, tmp_path, tiny_model_dir):
    w = make_window(model=str(tmp_path / "no-such-model"), wait=False)
    panel = w.prompt_panel
    qtbot.waitUntil(panel.error_label.isVisible, timeout=TIMEOUT)
    assert "model folder not found" in panel.error_label.text().lower()
    assert not panel.generate_button.isEnabled()
    w.workspace.use_model(str(tiny_model_dir))
    qtbot.waitUntil(lambda: w.workspace.info is not None, timeout=TIMEOUT)
    assert not panel.error_label.isVisible() and panel.generate_button.isEnabled()


def test_settings_and_gallery_survive_a_restart_without_regenerating(make_window, qtbot, tmp_path):
    w = make_window()
    w.prompt_panel.prompt.setPlainText("two yellow circles")
    w.prompt_panel.steps.setValue(3)
    w.workspace.generate()
    qtbot.waitUntil(lambda: w.workspace.prompt_result is not None, timeout=TIMEOUT)
    w.workspace.keep()
    w.close()
    data = json.loads((tmp_path / "config" / "settings.json").read_text())
    assert data["version"] == 1 and data["settings"]["window_geometry"]
    w2 = make_window()
    assert w2.prompt_panel.prompt.toPlainText() == "two yellow circles"
    assert w2.prompt_panel.steps.value() == 3 and w2.strip.count() == 1
    assert w2.strip.item_at(0).params["steps"] == 3
    qtbot.wait(200)
    assert w2.workspace.prompt_id == 0 and w2.preview.image() is None  # no image made by itself


def test_corrupt_settings_and_gallery_are_recovered(make_window, tmp_path):
    (tmp_path / "config").mkdir(parents=True)
    (tmp_path / "config" / "settings.json").write_text("{{{")
    gallery = tmp_path / "data" / "gallery"
    gallery.mkdir(parents=True)
    save_png(np.zeros((8, 8, 3), np.uint8), gallery / "old.png", {"prompt": "an old image", "seed": 1})
    (gallery / "gallery.sqlite3").write_bytes(b"garbage" * 200)
    w = make_window(wait=False)
    assert w.strip.count() == 1
    assert list((tmp_path / "config").glob("settings.json.corrupt-*"))


def test_clicking_a_thumbnail_restores_without_fixing_the_seed(make_window, qtbot):
    w = make_window()
    panel, ws = w.prompt_panel, w.workspace
    panel.prompt.setPlainText("a black square")
    ws.generate()
    qtbot.waitUntil(lambda: ws.prompt_result is not None, timeout=TIMEOUT)
    seed = ws.prompt_result.request.seed
    ws.keep()
    panel.prompt.setPlainText("something else")
    rect = w.strip.visualItemRect(w.strip.item(0))
    qtbot.mouseClick(w.strip.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert (panel.prompt.toPlainText(), panel.seed.text()) == ("a black square", str(seed))
    assert panel.seed_mode.currentText() == "random" and w.preview.image() is not None
    assert "Seeds are random" in w.statusBar().currentMessage()


def test_dropping_a_png_restores_its_parameters(make_window, tmp_path):
    w = make_window()
    meta = {"prompt": "a cyan cross", "steps": 4, "seed": 9, "guidance": 2.5}
    path = save_png(np.zeros((8, 8, 3), np.uint8), tmp_path / "x.png", meta)
    assert w.workspace.restore_from_file(str(path))
    panel = w.prompt_panel
    shown = (panel.prompt.toPlainText(), panel.steps.value(), panel.seed.text(), panel.guidance.value())
    assert shown == ("a cyan cross", 4, "9", 2.5)


def test_canvas_undo_redo_clear_and_import(make_window, tmp_path):
    from PIL import Image

    w = make_window()
    c = w.canvas_panel.canvas
    c.stroke([QPointF(4, 4), QPointF(20, 20)])
    drawn = c.to_array()
    c.undo()
    assert c.is_blank()
    c.redo()
    np.testing.assert_array_equal(c.to_array(), drawn)
    picture = np.full((64, 64, 3), 255, np.uint8)
    picture[16:48, 16:48] = (30, 60, 200)
    Image.fromarray(picture).save(tmp_path / "p.png")
    w.import_sketch(str(tmp_path / "p.png"))
    assert not c.is_blank() and w.tabs.currentIndex() == 1
    (tmp_path / "bad.png").write_bytes(b"nope")
    w.import_sketch(str(tmp_path / "bad.png"))
    assert "Cannot import" in w.prompt_panel.error_label.text()


def test_the_vocabulary_examples_fill_the_prompt(make_window):
    """The tiny model has no word list: the embedded model's is put in its place."""
    w = make_window()
    w.workspace.vocabulary = read_vocabulary(project_root() / "models" / "sprint-shapes", 16)
    panel = w.prompt_panel
    panel.show_vocabulary(w.workspace.vocabulary)
    assert panel.examples.isVisible() and "a red circle" in panel.examples.text()
    panel.examples.linkActivated.emit("example:two blue squares")
    assert panel.prompt.toPlainText() == "two blue squares"
    panel.prompt.setPlainText("a cat on a sofa")
    assert panel.hint.isVisible() and "“cat”" in panel.hint.text()
    panel.examples.linkActivated.emit("words:")
    assert panel.words.isVisible() and "circle" in panel.words.text()


def test_layout_for_a_new_user(make_window):
    """Minimum size, one Keep button, a hint in the empty strip, framed thumbnails, checkable View
    items, dimmed disabled controls in the dark theme."""
    w = make_window()
    w.resize(480, 320)
    assert (w.width(), w.height()) >= MIN_SIZE
    assert w.preview.minimumWidth() <= 160  # the preview scales down instead of being cropped
    keeps = [b for b in w.findChildren(QPushButton) if b.text() == "Keep"]
    assert len(keeps) == 1
    strip = w.strip.grab().toImage()
    colours = {strip.pixel(x, y) for x in range(0, strip.width(), 3) for y in range(0, strip.height(), 3)}
    assert w.strip.count() == 0 and len(colours) > 2  # the hint text is drawn
    assert w.live_action.isCheckable() and w.dark_action.isCheckable()
    w.live_action.setChecked(False)
    assert not w.canvas_panel.live.isChecked()
    w.dark_action.setChecked(True)
    palette = QApplication.palette()
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText)
    assert disabled != palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText)
    assert palette.color(QPalette.ColorRole.Link).lightness() > 128  # example links readable on dark
    w.dark_action.setChecked(False)
    path = w.workspace.gallery.folder / "t.png"
    save_png(np.full((16, 16, 3), 250, np.uint8), path, {"prompt": "x"})
    thumb = w.strip._thumbnail(path)
    assert thumb.toImage().pixel(0, 0) == w.strip.palette().mid().color().rgb()


def test_open_folder_without_a_file_manager_says_where_it_is(make_window):
    w = make_window()
    assert not w.open_folder()  # the offscreen platform has no desktop services
    assert str(w.workspace.gallery.folder) in w.prompt_panel.error_label.text()


def test_settings_lists_only_devices_this_computer_has(qtbot):
    from sprint_desktop.ui.settings_dialog import SettingsDialog

    no_gpu = SettingsDialog(Settings(), has_nvidia_gpu=False)
    qtbot.addWidget(no_gpu)
    assert [no_gpu.device.itemData(i) for i in range(no_gpu.device.count())] == ["auto", "cpu"]
    gpu = SettingsDialog(Settings(device="cuda"), has_nvidia_gpu=True)
    qtbot.addWidget(gpu)
    assert gpu.result_settings().device == "cuda"
    model = no_gpu.model
    assert model.minimumWidth() > model.fontMetrics().horizontalAdvance(model.placeholderText())


def test_settings_offer_compiling_for_pytorch_only(qtbot):
    from sprint_desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(backend="torch", compile="reduce-overhead"), has_nvidia_gpu=True)
    qtbot.addWidget(dialog)
    combo = dialog.compile
    assert [combo.itemData(i) for i in range(combo.count())] == ["off", "default", "reduce-overhead"]
    assert combo.isEnabled() and dialog.result_settings().compile == "reduce-overhead"
    dialog.backend.setCurrentIndex(dialog.backend.findData("onnx"))
    assert not combo.isEnabled()  # ONNX Runtime ignores it
    dialog.backend.setCurrentIndex(dialog.backend.findData("auto"))  # PyTorch unless there is an export
    combo.setCurrentIndex(combo.findData("default"))
    assert combo.isEnabled() and dialog.result_settings().compile == "default"


def test_every_submitted_request_ends_with_one_signal(qtbot):
    """A request replaced while it waits is reported cancelled (the live canvas relies on it)."""
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.ui.worker import EngineWorker

    worker = EngineWorker()
    cancelled = []
    worker.cancelled.connect(cancelled.append)
    try:
        with worker._loop.cond:  # hold the thread so that the first two are still waiting when replaced
            a = worker.submit(GenerateRequest("a"))
            b = worker.submit(GenerateRequest("b"))
            c = worker.submit(GenerateRequest("c"))
        qtbot.waitUntil(lambda: a in cancelled and b in cancelled, timeout=5000)
        assert c not in cancelled
    finally:
        worker.stop()


def test_onnx_backend_from_the_settings(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    w = make_window()
    ws = w.workspace
    messages = []
    w.worker.load_progress.connect(messages.append)
    ws.apply_settings(replace(ws.settings, backend="onnx"))
    qtbot.waitUntil(lambda: ws.info is not None and ws.info.backend == "onnx", timeout=120_000)
    ws.set_params(prompt="a red circle")
    ws.generate()
    qtbot.waitUntil(lambda: ws.prompt_result is not None, timeout=TIMEOUT)
    assert ws.prompt_result.request.backend == "onnx" and "onnx" in w.statusBar().model_label.text()
    assert any("exporting to ONNX: transformer" in m for m in messages)  # the export was shown


def test_the_gpu_and_models_dialogs_are_made_once_and_shown_again(make_window, tmp_path, monkeypatch):
    """Each File ▸ GPU acceleration / Models made a new dialog, and the closed ones stayed behind as
    hidden children of the window."""
    from sprint_desktop.store import gpu_runtime
    from sprint_desktop.ui.gpu_dialog import GpuRuntimeDialog
    from sprint_desktop.ui.models_dialog import ModelManagerDialog

    monkeypatch.setenv(gpu_runtime.ROOT_ENV, str(tmp_path / "rt"))
    w = make_window(wait=False)
    for open_dialog, kind in ((w.open_gpu_runtime, GpuRuntimeDialog), (w.open_models, ModelManagerDialog)):
        shown = []
        for _ in range(3):
            open_dialog()
            dialogs = w.findChildren(kind)
            assert len(dialogs) == 1 and dialogs[0].isVisible()
            shown.append(dialogs[0])
            dialogs[0].close()
        assert shown[0] is shown[1] is shown[2] and not shown[0].isVisible()


def test_a_closed_settings_dialog_is_deleted(make_window, qtbot):
    """Settings is modal and made anew each time (from the current settings); each closed one
    stayed behind as a hidden child of the window."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from sprint_desktop.ui.settings_dialog import SettingsDialog

    w = make_window(wait=False)
    for _ in range(3):
        QTimer.singleShot(0, lambda: QApplication.activeModalWidget().reject())
        w.open_settings()
    qtbot.waitUntil(lambda: not w.findChildren(SettingsDialog), timeout=5000)


def test_quitting_cancels_a_running_job_instead_of_waiting_for_it(qtbot):
    """Quit took about 3 s: closing waited for the job in flight. Now the job is cancelled and the
    engine thread is not waited for beyond `QUIT_WAIT_S`."""
    import threading

    from sprint_desktop.core.errors import GenerationCancelled
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.ui.main_window import QUIT_WAIT_S
    from sprint_desktop.ui.worker import EngineWorker

    started, release = threading.Event(), threading.Event()

    class SlowEngine:  # holds the job until it is cancelled (or the test ends)
        def generate(self, request, progress=None, cancel=None, request_id=0):
            started.set()
            while not cancel.cancelled and not release.wait(0.01):
                pass
            raise GenerationCancelled("cancelled")

        def close(self):
            pass

    worker = EngineWorker()
    worker.engine = SlowEngine()
    worker.submit(GenerateRequest("a red circle"))
    assert started.wait(10)
    cancel = worker._loop.cancel
    worker.stop(timeout=QUIT_WAIT_S)
    assert QUIT_WAIT_S <= 0.1 and cancel is not None and cancel.cancelled
    release.set()


def _drop(window, url) -> None:
    from PySide6.QtCore import QMimeData
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([url])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)  # what Qt calls when a drag ends over the window


def test_dropping_a_png_with_hostile_metadata_restores_the_valid_fields(make_window, tmp_path):
    from PySide6.QtCore import QUrl

    w = make_window()
    panel = w.prompt_panel
    panel.steps.setValue(2)
    meta = {"prompt": "a cyan cross", "steps": 9, "seed": 2**70, "guidance": float("inf")}
    path = save_png(np.zeros((8, 8, 3), np.uint8), tmp_path / "x.png", meta)
    _drop(w, QUrl.fromLocalFile(str(path)))
    assert panel.prompt.toPlainText() == "a cyan cross" and panel.steps.value() == 2
    message = panel.error_label.text()
    assert message == "Not restored from x.png (values this app cannot use): steps, seed, guidance."
    _drop(w, QUrl("https://example.invalid/x.png"))
    assert panel.error_label.text().startswith("Only a file can be dropped here")
    assert panel.prompt.toPlainText() == "a cyan cross"

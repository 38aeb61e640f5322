"""The real window, offscreen, with the real worker and the tiny model (pytest-qt)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from sprint_desktop.core.metadata import save_png
from sprint_desktop.ui.main_window import MainWindow

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
            qtbot.waitUntil(lambda: w.info is not None, timeout=TIMEOUT)
        return w

    yield make
    for w in windows:
        if w.isVisible():
            w.close()


def test_enter_in_the_prompt_shows_an_image(make_window, qtbot):
    w = make_window()
    assert w.generate_button.isEnabled() and "tiny-sprint" in w.model_label.text()
    w.prompt.setPlainText("a red circle")
    qtbot.keyClick(w.prompt, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)
    assert w.view.image() is not None and w.view.image().width() == 32
    assert w.last_result.request.prompt == "a red circle"
    assert "ms" in w.latency_label.text()
    assert w.prompt.toPlainText() == "a red circle"  # Enter did not add a newline


def test_slider_and_controls_change_the_request(make_window):
    w = make_window()
    w.prompt.setPlainText("a blue cross")
    w.steps.setValue(1)
    first = w.current_request()
    w.steps.setValue(4)
    w.guidance.setValue(3.0)
    second = w.current_request()
    assert (first.steps, second.steps, second.guidance) == (1, 4, 3.0)
    assert first != second


def test_fixed_seed_gives_the_same_image_and_random_does_not(make_window, qtbot):
    w = make_window()
    w.prompt.setPlainText("a green square")
    w.seed_mode.setCurrentText("fixed")
    w.seed.setValue(5)
    images = []
    for _ in range(2):
        w.last_result = None
        w.generate()
        qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)
        images.append(w.last_result.image)
    np.testing.assert_array_equal(*images)
    w.seed_mode.setCurrentText("random")
    seeds = set()
    for _ in range(3):
        w.generate()
        seeds.add(w.seed.value())
    assert len(seeds) == 3  # a new seed each time (a collision has odds of about 1 in 10^9)


def test_burst_of_canvas_changes_gives_few_generations_and_shows_the_last(make_window, qtbot):
    w = make_window()
    w.prompt.setPlainText("a purple triangle")
    w.tabs.setCurrentIndex(1)
    w.live.setChecked(True)
    submitted = []
    original = w.worker.submit
    w.worker.submit = lambda r: submitted.append(r) or original(r)
    for i in range(50):
        w.canvas.stroke([QPointF(2 + i % 28, 4), QPointF(2 + i % 28, 28)])
    last_sketch = w.canvas.to_array()
    qtbot.waitUntil(
        lambda: not w.scheduler.in_flight and w.scheduler.pending is None and w.live_result is not None,
        timeout=TIMEOUT,
    )
    qtbot.wait(300)
    assert 1 <= len(submitted) <= 6
    np.testing.assert_array_equal(submitted[-1].control_image, last_sketch)
    assert w.live_result.request.control_digest == submitted[-1].control_digest
    assert w.live_view.image() is not None


def test_engine_error_shows_a_message_and_the_next_request_works(make_window, qtbot):
    w = make_window()
    w.size_combo.addItem("33 × 32", (33, 32))
    w.size_combo.setCurrentIndex(w.size_combo.count() - 1)
    w.prompt.setPlainText("a red circle")
    w.generate()
    qtbot.waitUntil(w.error_label.isVisible, timeout=TIMEOUT)
    assert "multiple of 2" in w.error_label.text()
    w.size_combo.setCurrentIndex(0)
    w.generate()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)
    assert not w.error_label.isVisible()


def test_empty_prompt_is_explained(make_window):
    w = make_window()
    w.prompt.setPlainText("   ")
    assert w.generate() is None
    assert "prompt is empty" in w.error_label.text()


def test_bad_model_folder_shows_a_message_and_app_keeps_working(make_window, qtbot, tmp_path, tiny_model_dir):
    w = make_window(model=str(tmp_path / "no-such-model"), wait=False)
    qtbot.waitUntil(w.error_label.isVisible, timeout=TIMEOUT)
    assert "model folder not found" in w.error_label.text()
    assert not w.generate_button.isEnabled()
    w.model_override = str(tiny_model_dir)
    w.load_model()
    qtbot.waitUntil(lambda: w.info is not None, timeout=TIMEOUT)
    w.prompt.setPlainText("a red circle")
    w.generate()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)


def test_settings_and_gallery_survive_a_restart(make_window, qtbot):
    w = make_window()
    w.prompt.setPlainText("two yellow circles")
    w.steps.setValue(3)
    w.generate()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)
    kept = w.keep()
    assert kept is not None and kept.path.exists()
    w.close()
    w2 = make_window()
    assert w2.prompt.toPlainText() == "two yellow circles"
    assert w2.steps.value() == 3
    assert w2.strip.count() == 1
    item = w2.strip.item(0).data(Qt.ItemDataRole.UserRole)
    assert item.params["prompt"] == "two yellow circles" and item.params["steps"] == 3


def test_corrupt_settings_and_gallery_are_recovered(make_window, tmp_path):
    (tmp_path / "config").mkdir(parents=True)
    (tmp_path / "config" / "settings.json").write_text("{{{")
    gallery = tmp_path / "data" / "gallery"
    gallery.mkdir(parents=True)
    save_png(np.zeros((8, 8, 3), np.uint8), gallery / "old.png", {"prompt": "an old image", "seed": 1})
    (gallery / "gallery.sqlite3").write_bytes(b"garbage" * 200)
    w = make_window(wait=False)
    assert "defaults are in use" in w.error_label.text() or "rebuilt" in w.error_label.text()
    assert w.strip.count() == 1
    assert list((tmp_path / "config").glob("settings.json.corrupt-*"))


def test_clicking_a_kept_image_restores_its_parameters(make_window, qtbot):
    w = make_window()
    w.prompt.setPlainText("a black square")
    w.seed_mode.setCurrentText("fixed")
    w.seed.setValue(77)
    w.steps.setValue(1)
    w.generate()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)
    w.keep()
    w.prompt.setPlainText("something else")
    w.steps.setValue(4)
    w.seed.setValue(1)
    w._on_gallery_clicked(w.strip.item(0))
    assert (w.prompt.toPlainText(), w.steps.value(), w.seed.value()) == ("a black square", 1, 77)


def test_dropping_a_png_restores_and_a_foreign_file_is_explained(make_window, tmp_path):
    w = make_window()
    path = save_png(
        np.zeros((8, 8, 3), np.uint8),
        tmp_path / "x.png",
        {"prompt": "a cyan cross", "steps": 4, "seed": 9, "guidance": 2.5},
    )
    assert w.restore_from_file(str(path))
    assert (w.prompt.toPlainText(), w.steps.value(), w.seed.value(), w.guidance.value()) == (
        "a cyan cross",
        4,
        9,
        2.5,
    )
    other = tmp_path / "y.txt"
    other.write_text("hello")
    assert not w.restore_from_file(str(other))
    assert "not a readable image" in w.error_label.text()


def test_canvas_undo_redo_clear_and_import(make_window, tmp_path):
    from PIL import Image

    w = make_window()
    c = w.canvas
    assert c.is_blank()
    c.stroke([QPointF(4, 4), QPointF(20, 20)])
    drawn = c.to_array()
    assert not c.is_blank()
    c.undo()
    assert c.is_blank()
    c.redo()
    np.testing.assert_array_equal(c.to_array(), drawn)
    c.clear()
    assert c.is_blank()
    picture = np.full((64, 64, 3), 255, np.uint8)
    picture[16:48, 16:48] = (30, 60, 200)
    Image.fromarray(picture).save(tmp_path / "p.png")
    w.import_sketch(str(tmp_path / "p.png"))
    assert not c.is_blank() and w.tabs.currentIndex() == 1
    (tmp_path / "bad.png").write_bytes(b"nope")
    w.import_sketch(str(tmp_path / "bad.png"))
    assert "Cannot import" in w.error_label.text()


def test_settings_file_is_versioned_json(make_window, tmp_path):
    w = make_window()
    w.close()
    data = json.loads((tmp_path / "config" / "settings.json").read_text())
    assert data["version"] == 1 and "window_geometry" in data["settings"]


def test_onnx_backend_from_the_settings(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    w = make_window()
    messages = []
    w.worker.load_progress.connect(messages.append)
    w.settings.backend = "onnx"
    w.load_model()
    qtbot.waitUntil(lambda: w.info is not None and w.info.backend == "onnx", timeout=120_000)
    w.prompt.setPlainText("a red circle")
    w.last_result = None
    w.generate()
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)
    assert w.last_result.request.backend == "onnx" and "onnx" in w.model_label.text()
    assert any("exporting to ONNX: transformer" in m for m in messages)  # the export was shown


def test_every_submitted_request_ends_with_one_signal(qtbot):
    """A request replaced while it waits is reported cancelled (the live canvas relies on it)."""
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.ui.worker import EngineWorker

    worker = EngineWorker()
    cancelled = []
    worker.cancelled.connect(cancelled.append)
    try:
        # No model is loaded, so the thread answers each job with `failed`; submitting three at
        # once replaces the waiting ones.
        with worker._cond:  # hold the thread so the first two are still waiting
            a = worker.submit(GenerateRequest("a"))
            b = worker.submit(GenerateRequest("b"))
        c = worker.submit(GenerateRequest("c"))
        qtbot.waitUntil(lambda: a in cancelled and b in cancelled, timeout=5000)
        assert c not in cancelled
    finally:
        worker.stop()


def test_generate_is_not_cancelled_by_the_live_canvas(make_window, qtbot):
    w = make_window()
    w.prompt.setPlainText("a red circle")
    w.tabs.setCurrentIndex(1)
    w.live.setChecked(True)
    w.canvas.stroke([QPointF(4, 4), QPointF(20, 20)])  # a live job starts
    w.last_result = None
    w.generate()  # the user presses Enter while it runs
    for i in range(5):  # and keeps drawing
        w.canvas.stroke([QPointF(5 + i, 5), QPointF(5 + i, 25)])
    qtbot.waitUntil(lambda: w.last_result is not None, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not w.scheduler.in_flight and w.scheduler.pending is None, timeout=TIMEOUT)
    assert w.live_result is not None

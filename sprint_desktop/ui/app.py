"""`sprint-desktop`: start the app (the window shows at once; the model loads in the worker).

    sprint-desktop [--model PATH]
    sprint-desktop --self-test OUT.png [--model PATH] [--timeout S]

The self-test opens the real window, generates one image from a prompt and one from a sketch,
saves a screenshot of the window to OUT.png and exits 0, or prints what failed and exits 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from ..core.paths import project_root
from ..store.gpu_runtime import activate_gpu_runtime
from . import gc_guard
from .main_window import MainWindow

SELF_TEST_PROMPT = "a red circle left of a blue square"


def self_test_sketch(n: int) -> list[list[tuple[float, float]]]:
    """The self-test's drawing on an ``n`` px canvas, in the Sprint-Shapes world and matching
    `SELF_TEST_PROMPT`: a circle's outline on the left, a square's on the right, apart."""
    h = 0.18 * n
    cx, cy = 0.25 * n, 0.5 * n
    circle = [(cx + h * math.cos(a), cy + h * math.sin(a)) for a in (2 * math.pi * i / 48 for i in range(49))]
    sx = 0.73 * n
    square = [(sx - h, cy - h), (sx + h, cy - h), (sx + h, cy + h), (sx - h, cy + h), (sx - h, cy - h)]
    return [circle, square]


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    """Run the event loop until ``condition()`` holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    tick = QTimer(interval=5)  # wakes the loop so the deadline is seen even with no other events
    tick.start()
    loop = QEventLoop()
    try:
        while not condition():
            if time.monotonic() > deadline:
                return False
            loop.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
    finally:
        tick.stop()
    return True


def self_test(window: MainWindow, out: Path, timeout: float) -> list[str]:
    """Drive the real window like a person would; return the failures (empty when all passed)."""
    ws = window.workspace
    errors: list[str] = []
    ws.events.error.connect(lambda text: errors.append(text) if text else None)
    timings: dict[str, float] = {}
    start = time.monotonic()
    if not _wait(lambda: ws.info is not None or bool(errors), timeout):
        return ["the model did not load in time"]
    if ws.info is None:
        return [f"the model did not load: {errors[-1]}"]
    timings["model_ready_s"] = time.monotonic() - start
    failures: list[str] = []
    window.tabs.setCurrentIndex(0)
    ws.set_params(prompt=SELF_TEST_PROMPT, seed_mode="fixed")
    t0 = time.monotonic()
    ws.generate()
    if not _wait(lambda: ws.prompt_result is not None or bool(errors), timeout):
        failures.append("no image from the prompt")
    elif ws.prompt_result is None:
        failures.append(f"prompt generation failed: {errors[-1]}")
    timings["prompt_to_image_s"] = time.monotonic() - t0
    if ws.prompt_result is not None:
        ws.keep()  # the gallery strip then shows the prompt's image beside the sketch's
    window.tabs.setCurrentIndex(1)
    window.canvas_panel.set_live(True)
    t0 = time.monotonic()
    for stroke in self_test_sketch(window.canvas_panel.canvas.resolution()):  # each stroke asks for an image
        window.draw_stroke(stroke)
    request = ws.live_request()
    digest = request.control_digest if request is not None else None

    def sketch_done() -> bool:
        result = ws.live_result
        return result is not None and result.request.control_digest == digest

    if not _wait(lambda: sketch_done() or bool(errors), timeout):
        failures.append("no image from the sketch")
    elif not sketch_done():
        failures.append(f"sketch generation failed: {errors[-1]}")
    timings["sketch_to_image_s"] = time.monotonic() - t0
    ws.keep()
    failures += _unknown_words_step(window, timeout, errors)
    QCoreApplication.processEvents()
    failures += _screenshot(window, out)
    print("self-test timings: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    return failures


def _unknown_words_step(window: MainWindow, timeout: float, errors: list[str]) -> list[str]:
    """A model with a word list (the embedded one) must say which words of a prompt it does not
    know, and still draw the rest."""
    ws = window.workspace
    if ws.vocabulary is None or ws.vocabulary.words is None:
        return []
    window.tabs.setCurrentIndex(0)
    ws.set_params(prompt=SELF_TEST_PROMPT + " on a sofa")
    if "sofa" not in window.prompt_panel.hint.text():
        return ["the prompt's unknown words were not pointed out"]
    ws.prompt_result = None
    ws.generate()
    if not _wait(lambda: ws.prompt_result is not None or bool(errors), timeout) or ws.prompt_result is None:
        return ["no image from a prompt with unknown words"]
    ws.keep()
    return []


def _screenshot(window: MainWindow, out: Path) -> list[str]:
    """Save the window's pixels (the screen's under a real X server, else the widget's)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if QGuiApplication.platformName() == "xcb":
        geo = window.frameGeometry()
        shot = window.screen().grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height())
    else:
        shot = window.grab()
    return [] if shot.save(str(out)) else [f"could not write the screenshot {out}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sprint-desktop")
    parser.add_argument("--model", help="model folder (default: the settings' or the embedded model)")
    parser.add_argument(
        "--self-test", type=Path, metavar="OUT.png", help="run the self-test, save a screenshot"
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="self-test time limit per stage, seconds"
    )
    args, qt_args = parser.parse_known_args(list(argv) if argv is not None else sys.argv[1:])
    launched = time.monotonic()
    # Before anything imports onnxruntime: a GPU runtime installed on first use goes first on sys.path.
    activate_gpu_runtime()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("Sprint Desktop")
    gc_guard.install(app)  # no Qt object is ever collected on a worker thread
    app.setDesktopFileName("sprint-desktop")
    icon = project_root() / "resources" / "icons" / "sprint-desktop.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow(model=args.model, offer_gpu=args.self_test is None)
    window.show()
    print(f"window shown after {time.monotonic() - launched:.2f} s", file=sys.stderr)
    if args.self_test is None:
        code = app.exec()
        # The window has saved everything; a job may still be running in the engine thread, and
        # tearing down the interpreter with torch loaded takes about half a second more: skip it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    try:
        failures = self_test(window, args.self_test, args.timeout)
    finally:
        QTimer.singleShot(0, window.close)
        window.close()
    for failure in failures:
        print(f"sprint-desktop: self-test failed: {failure}", file=sys.stderr)
    if not failures:
        print(f"self-test passed; screenshot in {args.self_test}")
    # As after a normal quit: a job (the refinement of the last image, say) may still be running in
    # the engine thread, and tearing the interpreter down under it aborts the process.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main())

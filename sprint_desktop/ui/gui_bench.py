"""GUI timings: launch to window, to model ready, to first image; GUI overhead per image against
the engine call alone (interleaved, same process); live-canvas stroke-to-image latency and rate.

    python -m sprint_desktop.ui.gui_bench [--model PATH] [--repeats 20] [--json bench-out/gui.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LAUNCHED = time.perf_counter()

from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ..core.request import GenerateRequest  # noqa: E402
from .app import _wait  # noqa: E402
from .main_window import MainWindow  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gui_bench")
    parser.add_argument("--model", help="model folder (default: the embedded model)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("bench-out/gui.json"))
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp())
    w = MainWindow(config_dir=tmp / "c", data_dir=tmp / "d", model=args.model)
    w.show()
    app.processEvents()
    shown = time.perf_counter() - LAUNCHED
    if not _wait(lambda: w.info is not None or w.error_label.isVisible(), 300) or w.info is None:
        print(f"model did not load: {w.error_label.text()}", file=sys.stderr)
        return 1
    ready = time.perf_counter() - LAUNCHED
    w.prompt.setPlainText("a red circle left of a blue square")
    w.seed_mode.setCurrentText("fixed")
    w.generate()
    _wait(lambda: w.last_result is not None, 300)
    first = time.perf_counter() - LAUNCHED

    # GUI round trip (click -> image on screen) vs the engine call alone, interleaved.
    gui, engine = [], []
    request = w.current_request()
    for i in range(args.repeats):
        w.last_result = None
        t0 = time.perf_counter()
        w.generate()
        _wait(lambda: w.last_result is not None, 300)
        w.view.repaint()
        gui.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        w.worker.engine.generate(GenerateRequest(**{**_fields(request), "seed": i}))
        engine.append(time.perf_counter() - t0)
    med_gui, med_engine = statistics.median(gui) * 1e3, statistics.median(engine) * 1e3

    # Live canvas: a stroke every 16 ms (a 60 Hz pen) for 3 s.
    w.tabs.setCurrentIndex(1)
    w.live.setChecked(True)
    shown_images = [0]
    stroke_times: dict[str, float] = {}
    latencies: list[float] = []

    def on_image(request_id: int, result: Any) -> None:
        shown_images[0] += 1
        latencies.append(
            time.perf_counter() - stroke_times.get(result.request.control_digest, time.perf_counter())
        )

    w.worker.finished.connect(on_image)
    n = w.canvas.resolution()
    t_end = time.perf_counter() + 3.0
    i = 0
    while time.perf_counter() < t_end:
        x = 2 + (i % (n - 4))
        w.canvas.stroke([QPointF(x, 2), QPointF(x, n - 3)])
        digest = w.current_request(w.canvas.to_array()).control_digest
        assert digest is not None
        stroke_times.setdefault(digest, time.perf_counter())
        i += 1
        _wait(lambda: False, 0.016)
    _wait(lambda: not w.scheduler.in_flight and w.scheduler.pending is None, 60)
    report = {
        "model": w.info.name,
        "device": w.info.device,
        "launch_to_window_s": round(shown, 3),
        "launch_to_model_ready_s": round(ready, 3),
        "launch_to_first_image_s": round(first, 3),
        "gui_round_trip_ms": round(med_gui, 2),
        "engine_alone_ms": round(med_engine, 2),
        "gui_overhead_ms": round(med_gui - med_engine, 2),
        "gui_overhead_target_ms": round(0.10 * med_engine + 5, 2),
        "live_strokes": i,
        "live_images": shown_images[0],
        "live_images_per_s": round(shown_images[0] / 3.0, 2),
        "live_stroke_to_image_ms_median": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
    }
    w.close()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def _fields(request: GenerateRequest) -> dict:
    from dataclasses import fields

    return {f.name: getattr(request, f.name) for f in fields(request) if f.init}


if __name__ == "__main__":
    sys.exit(main())

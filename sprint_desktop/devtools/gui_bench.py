"""GUI timings: launch to window, to model ready, to first image; GUI overhead per image against
the engine call alone (interleaved, same process); live-canvas stroke-to-image latency and rate.
"Launch" is the process start (read from /proc on Linux), so the interpreter and the imports count.

    python -m sprint_desktop.devtools.gui_bench [--model PATH] [--repeats 20] [--json bench-out/gui.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


def _since_process_start() -> float:
    """Seconds since this process started (Linux: from /proc, so the interpreter's own start-up and
    the imports before this module count); 0.0 where that cannot be read."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22, starttime, in clock ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


LAUNCHED = time.perf_counter() - _since_process_start()

from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ..core.request import GenerateRequest  # noqa: E402
from ..ui.app import _wait  # noqa: E402
from ..ui.main_window import MainWindow  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gui_bench")
    parser.add_argument("--model", help="model folder (default: the embedded model)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("bench-out/gui.json"))
    parser.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx"],
        help="the app's backend setting (default: its default)",
    )
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp())
    if args.backend:
        from ..core.settings import Settings, save_settings

        save_settings(Settings(backend=args.backend), tmp / "c" / "settings.json")
    w = MainWindow(config_dir=tmp / "c", data_dir=tmp / "d", model=args.model)
    ws = w.workspace
    errors: list[str] = []
    ws.events.error.connect(lambda text: errors.append(text) if text else None)
    w.show()
    app.processEvents()
    shown = time.perf_counter() - LAUNCHED
    if not _wait(lambda: ws.info is not None or bool(errors), 300) or ws.info is None:
        print(f"model did not load: {errors[-1] if errors else 'timed out'}", file=sys.stderr)
        return 1
    ready = time.perf_counter() - LAUNCHED
    ws.set_params(prompt="a red circle left of a blue square", seed_mode="fixed")
    ws.generate()
    _wait(lambda: ws.prompt_result is not None, 300)
    first = time.perf_counter() - LAUNCHED

    # GUI round trip (click -> image on screen) vs the engine call alone, interleaved; no
    # refinement in between (it would start whenever an engine call takes longer than the pause).
    refine_setting = ws.settings.refine
    ws.settings = replace(ws.settings, refine=False)
    gui, engine = [], []
    request = ws.params.request(model=ws.info.name, backend=ws.info.backend)
    for i in range(args.repeats):
        ws.prompt_result = None
        t0 = time.perf_counter()
        ws.generate()
        _wait(lambda: ws.prompt_result is not None, 300)
        w.preview.repaint()
        gui.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        w.worker.engine.generate(GenerateRequest(**{**_fields(request), "seed": i}))
        engine.append(time.perf_counter() - t0)
    med_gui, med_engine = statistics.median(gui) * 1e3, statistics.median(engine) * 1e3
    ws.settings = replace(ws.settings, refine=refine_setting)

    # Live canvas: a stroke every 16 ms (a 60 Hz pen) for 3 s.
    w.tabs.setCurrentIndex(1)
    w.canvas_panel.set_live(True)
    image_times: list[float] = []
    stroke_times: dict[str, float] = {}
    latencies: list[float] = []
    instant_steps = ws.params.steps
    refined_times: list[tuple[float, str | None]] = []

    def on_image(request_id: int, result: Any) -> None:
        now = time.perf_counter()
        if result.request.steps != instant_steps:  # a refinement (the pen rested): counted apart
            refined_times.append((now, result.request.control_digest))
            return
        image_times.append(now)
        latencies.append(now - stroke_times.get(result.request.control_digest, now))

    w.worker.finished.connect(on_image)
    canvas = w.canvas_panel.canvas
    n = canvas.resolution()
    t_end = time.perf_counter() + 3.0
    i = 0
    while time.perf_counter() < t_end:
        x = 2 + (i % (n - 4))
        canvas.stroke([QPointF(x, 2), QPointF(x, n - 3)])
        live = ws.live_request()
        digest = live.control_digest if live is not None else None
        assert digest is not None
        stroke_times.setdefault(digest, time.perf_counter())
        i += 1
        _wait(lambda: False, 0.016)
    last_stroke = time.perf_counter()
    final = digest
    final_seen = [0.0]

    def final_done() -> bool:  # the image of the finished drawing is on screen (pen lifted)
        result = ws.live_result
        if result is not None and result.request.control_digest == final and not final_seen[0]:
            final_seen[0] = time.perf_counter()
        return bool(final_seen[0])

    _wait(final_done, 60)
    last = ws.live_result
    if last is not None and ws.refinement(last.request) is not None:  # the drawing is refined next
        _wait(lambda: any(d == final for _, d in refined_times), 60)
    _wait(lambda: ws.scheduler.idle, 60)
    refined_at = next((t for t, d in refined_times if d == final), None)
    report = {
        "model": ws.info.name,
        "backend": ws.info.backend,
        "device": ws.info.device,
        "control_mode": ws.info.control_mode,
        "size": [request.width, request.height],
        "launch_to_window_s": round(shown, 3),
        "launch_to_model_ready_s": round(ready, 3),
        "launch_to_first_image_s": round(first, 3),
        "gui_round_trip_ms": round(med_gui, 2),
        "engine_alone_ms": round(med_engine, 2),
        "gui_overhead_ms": round(med_gui - med_engine, 2),
        "gui_overhead_target_ms": round(0.10 * med_engine + 5, 2),
        "live_strokes": i,
        "live_images": len(image_times),
        "live_images_per_s": round(sum(t <= t_end for t in image_times) / 3.0, 2),
        "live_stroke_to_image_ms_median": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
        "live_stroke_to_image_ms": [round(x * 1e3, 1) for x in latencies],
        "live_last_stroke_to_its_image_ms": round((final_seen[0] - last_stroke) * 1e3, 1)
        if final_seen[0]
        else None,
        "live_steps": instant_steps,
        "live_refine_steps": ws.info.refine_steps if refine_setting else None,
        "live_last_stroke_to_refined_image_ms": round((refined_at - last_stroke) * 1e3, 1)
        if refined_at
        else None,
        "live_refinements_while_drawing": sum(t <= t_end for t, _ in refined_times),
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

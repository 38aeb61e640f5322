"""Soak: many images through the engine and many live-canvas requests through the window's live
path, with the process's resident memory (RSS) every 100; fails when RSS grows more than
--max-growth-mb after the warm-up (the first 100 of each part).

Not part of the test run (minutes of CPU). Usage:

    PYTHONPATH=. QT_QPA_PLATFORM=offscreen python scripts/soak.py --images 2000 --live 1000 [--backend onnx]

The live part drives the Qt-free workspace model (sprint_desktop.workspace) when the app has one,
else the current MainWindow offscreen (its canvas, live scheduler and worker thread); the report
says which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import psutil

PROMPTS = [
    "a red circle left of a blue square",
    "two green triangles",
    "a small yellow cross above a large purple circle",
    "three orange squares",
    "a cyan triangle right of a black cross",
]


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def strokes(i: int, size: int = 64) -> np.ndarray:
    """A sketch that changes every call: white with a few dark lines."""
    rng = np.random.default_rng(i)
    img = np.full((size, size, 3), 255, np.uint8)
    for _ in range(3):
        x, y = rng.integers(4, size - 4, 2)
        length = int(rng.integers(8, size // 2))
        if rng.random() < 0.5:
            img[y : y + 2, x : min(size, x + length)] = 0
        else:
            img[y : min(size, y + length), x : x + 2] = 0
    return img


def engine_part(model: str, n: int, samples: list[dict], backend: str = "torch") -> None:
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.factory import create_engine

    engine = create_engine(model, backend=backend, device="cpu")
    info = engine.load()
    start = time.perf_counter()
    for i in range(n):
        control = strokes(i, info.default_width) if i % 10 == 0 else None
        request = GenerateRequest(
            PROMPTS[i % len(PROMPTS)] + f" {i % 37}", steps=1 + i % 2, seed=i, control_image=control
        )
        result = engine.generate(request)
        assert result.image.shape[2] == 3
        if (i + 1) % 100 == 0:
            samples.append({"part": "engine", "done": i + 1, "rss_mb": round(rss_mb(), 1)})
            print(json.dumps({**samples[-1], "s": round(time.perf_counter() - start, 1)}), flush=True)
    engine.close()


def live_part_workspace(model: str, n: int, samples: list[dict], tmp: Path, backend: str = "torch") -> str:
    from sprint_desktop.factory import create_engine
    from sprint_desktop.workspace import InlineRunner, Workspace

    clock = [0.0]
    runner = InlineRunner(
        lambda path, _backend, device, _compile: create_engine(path, backend=backend, device="cpu")
    )
    ws = Workspace(runner, tmp / "settings.json", tmp / "data", model_override=model, clock=lambda: clock[0])
    runner.bind(ws)
    ws.load_model()
    runner.run_all()
    ws.set_params(prompt=PROMPTS[0])
    ws.set_live(True)
    ws.set_canvas_shown(True)
    finished = [0]
    ws.events.live_image.connect(lambda *a: finished.__setitem__(0, finished[0] + 1))
    start = time.perf_counter()
    for i in range(n):
        ws.set_sketch(strokes(i))
        clock[0] += 1.0  # past the debounce: the scheduler starts the request
        ws.pump()
        runner.run_all()
        # InlineRunner keeps every request it was given (tests read them back), each with its
        # 64x64 sketch: 12 KB a request that the app's worker never keeps. Not the app's memory.
        runner.submitted.clear()
        if (i + 1) % 100 == 0:
            samples.append(
                {"part": "live", "done": i + 1, "rss_mb": round(rss_mb(), 1), "images": finished[0]}
            )
            print(json.dumps({**samples[-1], "s": round(time.perf_counter() - start, 1)}), flush=True)
    return "workspace model (sprint_desktop.workspace, InlineRunner)"


def live_part_window(model: str, n: int, samples: list[dict], tmp: Path) -> str:
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from sprint_desktop.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    w = MainWindow(config_dir=tmp / "config", data_dir=tmp / "data", model=model, offer_gpu=False)
    w.show()

    def wait(cond, timeout=120.0):
        end = time.monotonic() + timeout
        while not cond():
            app.processEvents()
            time.sleep(0.002)
            if time.monotonic() > end:
                raise TimeoutError("the window did not answer")

    wait(lambda: w.info is not None)
    w.prompt.setPlainText(PROMPTS[0])
    w.tabs.setCurrentIndex(1)
    w.live.setChecked(True)
    start = time.perf_counter()
    for i in range(n):
        before = w.live_result
        x = 2 + (i * 7) % 28
        w.canvas.stroke([QPointF(x, 4 + i % 5), QPointF(x, 28)])
        wait(
            lambda b=before: (
                w.live_result is not b and not w.scheduler.in_flight and w.scheduler.pending is None
            )
        )
        if (i + 1) % 100 == 0:
            samples.append({"part": "live", "done": i + 1, "rss_mb": round(rss_mb(), 1)})
            print(json.dumps({**samples[-1], "s": round(time.perf_counter() - start, 1)}), flush=True)
    w.close()
    return "current MainWindow offscreen (canvas strokes, live scheduler, worker thread)"


def growth(samples: list[dict], part: str) -> float:
    values = [s["rss_mb"] for s in samples if s["part"] == part]
    return max(values[1:]) - values[0] if len(values) > 1 else 0.0  # after the first 100 (warm-up)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the embedded model)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--live", type=int, default=1000)
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--json", type=Path, default=Path("bench-out/soak.json"))
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    from sprint_desktop.core.paths import default_model_path

    model = args.model or str(default_model_path())
    samples: list[dict] = []
    engine_part(model, args.images, samples, args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            import sprint_desktop.workspace  # noqa: F401

            path = live_part_workspace(model, args.live, samples, Path(tmp), args.backend)
        except ImportError:
            path = live_part_window(model, args.live, samples, Path(tmp))
    report = {
        "model": model,
        "images": args.images,
        "live_requests": args.live,
        "live_path": path,
        "backend": args.backend,
        "engine_growth_mb": round(growth(samples, "engine"), 1),
        "live_growth_mb": round(growth(samples, "live"), 1),
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    ok = report["engine_growth_mb"] < args.max_growth_mb and report["live_growth_mb"] < args.max_growth_mb
    print(
        f"engine: {args.images} images, RSS growth after warm-up {report['engine_growth_mb']} MB; "
        f"live ({path}): {args.live} requests, growth {report['live_growth_mb']} MB -> {'OK' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

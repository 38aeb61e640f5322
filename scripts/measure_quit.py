"""How long the real app takes to quit: from closing its window while a 4-step image is being made
to the end of the process. Runs `sprint_desktop.ui.app.main` (the installed entry point) in a child
process under the current display; PYTHONPATH selects the tree measured.

    xvfb-run -a python scripts/measure_quit.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child() -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from sprint_desktop.ui import app as entry

    def window():  # the app's main window, once it is shown
        return next((w for w in app.topLevelWidgets() if type(w).__name__ == "MainWindow"), None)

    def step() -> None:
        w = window()
        ws = getattr(w, "workspace", w)  # the window before the workspace model held it itself
        if w is None or getattr(ws, "info", None) is None:
            QTimer.singleShot(50, step)
            return
        if hasattr(w, "workspace"):
            ws.set_params(prompt="a red circle", steps=4)
            ws.generate()
        else:
            w.prompt.setPlainText("a red circle")
            w.steps.setValue(4)
            w.generate()
        QTimer.singleShot(30, close)

    def close() -> None:
        print(f"CLOSE_AT {time.time():.4f}", flush=True)
        window().close()

    QTimer.singleShot(0, step)
    sys.exit(entry.main([]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "XDG_CONFIG_HOME": f"{tmp}/c",
                "XDG_DATA_HOME": f"{tmp}/d",
                "SPRINT_NO_GPU_OFFER": "1",
            }
            proc = subprocess.run(
                [sys.executable, __file__, "--child"], capture_output=True, text=True, env=env, timeout=600
            )
            ended = time.time()
        marks = [line for line in proc.stdout.splitlines() if line.startswith("CLOSE_AT")]
        if not marks:
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            return 1
        times.append(ended - float(marks[-1].split()[1]))
        print(f"close -> process end: {times[-1]:.2f} s")
    print(f"median {statistics.median(times):.2f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

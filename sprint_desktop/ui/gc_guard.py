"""Garbage collection only on the GUI thread.

Python's cyclic collector runs in whichever thread happens to allocate when a threshold is crossed.
If that is a worker thread (the GPU-runtime install, the engine worker) and the cycle holds a Qt
object, the object is destroyed off its thread and Qt can crash (a full test run segfaulted in
"Garbage-collecting" inside the GPU dialog's install thread). So automatic collection is turned off
and a timer on the GUI thread collects instead, generation by generation when their thresholds are
crossed, as automatic collection would.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadCollector(QObject):
    """Disables automatic GC and collects from the GUI thread every ``interval_ms``."""

    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        gc.disable()
        self.timer.start(interval_ms)

    def check(self) -> None:
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.threshold[generation]:
                gc.collect(generation)
                return

    def stop(self) -> None:
        self.timer.stop()
        gc.enable()


def install(app: QObject) -> GuiThreadCollector:
    """The collector, owned by ``app`` (lives as long as the application)."""
    return GuiThreadCollector(parent=app)

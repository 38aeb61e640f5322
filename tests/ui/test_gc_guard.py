"""The app's collector: automatic GC off, collection on the GUI thread's timer."""

from __future__ import annotations

import gc
import threading

from sprint_desktop.ui.gc_guard import GuiThreadCollector


class _Cycle:
    def __init__(self, log: list[str]) -> None:
        self.me = self
        self.log = log

    def __del__(self) -> None:
        self.log.append(threading.current_thread().name)


def test_cycles_are_collected_on_the_gui_thread_only(qtbot):
    was_enabled = gc.isenabled()
    collector = GuiThreadCollector(interval_ms=10)
    try:
        assert not gc.isenabled()
        log: list[str] = []

        def churn() -> None:  # a worker that makes garbage cycles
            for _ in range(3000):
                _Cycle(log)

        worker = threading.Thread(target=churn, name="worker")
        worker.start()
        worker.join()
        assert log == []  # nothing collected on the worker
        qtbot.waitUntil(lambda: len(log) >= 1000, timeout=5000)
        assert set(log) == {threading.main_thread().name}
    finally:
        collector.stop()
        gc.enable() if was_enabled else gc.disable()
    assert gc.isenabled() == was_enabled

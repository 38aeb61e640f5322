"""`EngineWorker`'s thread holds nothing of the worker: however the window lets go of it while a job
runs, it is destroyed at once on the GUI thread, and its thread then finishes the job, closes the
engine and ends without touching it. Its thread used to run the worker's own method: a worker let go
lived on with the thread (which then never ended), and once that thread ended Python destroyed the
worker on it (as the GPU dialog's thread did: a segfault in CI)."""

from __future__ import annotations

import gc
import threading

import pytest
from PySide6.QtCore import QObject

from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.ui.worker import EngineWorker

from .test_worker_cancel import GatedEngine


class HeldEngine(GatedEngine):
    """Its one step waits for ``gate``; it says when the job has started and when it is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.closed = threading.Event()

    def denoise(self, request, embeds, mask, noise, report=None, check=None):
        self.started.set()
        return super().denoise(request, embeds, mask, noise, report, check)

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("how", ["let go", "stop timed out, then let go", "parent destroyed"])
def test_a_worker_let_go_mid_job_goes_on_the_gui_thread_and_its_thread_ends(qtbot, monkeypatch, how):
    thread_errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args.exc_value))
    parent = QObject() if how == "parent destroyed" else None
    worker = EngineWorker(parent)
    engine = HeldEngine()
    worker.engine = engine
    destroyed_on: list[str] = []
    worker.destroyed.connect(lambda: destroyed_on.append(threading.current_thread().name))
    delivered: list[int] = []
    worker.finished.connect(lambda request_id, result: delivered.append(request_id))
    engine_thread = worker._thread
    try:
        worker.submit(GenerateRequest("a red circle", steps=1))
        assert engine.started.wait(10)
        if how == "stop timed out, then let go":
            worker.stop(timeout=0.01)  # as the window's close does: it does not wait for the job
            assert engine_thread.is_alive()
        del worker, parent
        gc.collect()
        assert destroyed_on == ["MainThread"]  # at once, here, while the job is still running
    finally:
        engine.gate.set()
    engine_thread.join(10)
    qtbot.wait(20)  # anything the thread posted is delivered (to nobody) now
    assert not engine_thread.is_alive() and engine.closed.is_set()
    assert thread_errors == [] and delivered == []


def test_the_thread_reports_reach_the_gui_thread_in_order(qtbot):
    worker = EngineWorker()
    engine = HeldEngine()
    engine.gate.set()
    seen: list[tuple[str, str]] = []

    def record(name: str):
        return lambda *args: seen.append((name, threading.current_thread().name))

    for name in ("started", "progress", "finished", "failed", "cancelled"):
        getattr(worker, name).connect(record(name))
    try:
        worker.submit(GenerateRequest("a red circle", steps=2))  # no engine yet: failed
        qtbot.waitUntil(lambda: ("failed", "MainThread") in seen, timeout=10_000)
        worker.engine = engine
        seen.clear()
        with qtbot.waitSignal(worker.finished, timeout=10_000):
            worker.submit(GenerateRequest("a red circle", steps=2))
    finally:
        worker.stop()
    assert {thread for _, thread in seen} == {"MainThread"}
    names = [name for name, _ in seen]
    assert names[0] == "started" and names[-1] == "finished" and set(names[1:-1]) == {"progress"}

"""`ThreadJob`: a Python thread's reports and outcome reach the GUI thread; the thread holds nothing
of the window, which may go first."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QObject

from sprint_desktop.core.errors import SprintError
from sprint_desktop.ui.thread_job import ThreadJob

TIMEOUT = 60_000


def test_reports_then_the_result_arrive_on_the_gui_thread(qtbot):
    def work(cancel, report):
        for i in range(1, 4):
            report(i, 3)
        return "site"

    window = QObject()
    job = ThreadJob(work, parent=window)
    seen = []
    job.progress.connect(lambda args: seen.append(("progress", args, threading.current_thread().name)))
    job.finished.connect(lambda value: seen.append(("finished", value, threading.current_thread().name)))
    assert not job.running
    with qtbot.waitSignal(job.finished, timeout=TIMEOUT):
        job.start()
        assert job.running
    gui = threading.current_thread().name
    assert seen[-2:] == [("progress", (3, 3), gui), ("finished", "site", gui)]  # the latest report
    assert all(thread == gui for _, _, thread in seen)
    assert job.ended and not job.running and not job.worker_thread.is_alive()


def test_an_exception_arrives_as_failed_and_stop_waits_for_the_thread(qtbot):
    started = threading.Event()

    def work(cancel, report):
        started.set()
        while not cancel.cancelled:
            time.sleep(0.01)
        raise SprintError("stopped")

    window = QObject()
    job = ThreadJob(work, parent=window)
    failures = []
    job.failed.connect(failures.append)
    job.start()
    assert started.wait(60)
    assert job.stop(60)  # cancels, joins, delivers at once
    assert not job.worker_thread.is_alive() and [str(e) for e in failures] == ["stopped"]


def test_destroying_the_window_cancels_the_work(qtbot):
    started, finish = threading.Event(), threading.Event()
    outcome = []

    def work(cancel, report):
        started.set()
        finish.wait(60)
        outcome.append(cancel.cancelled)

    window = QObject()
    job = ThreadJob(work, parent=window)
    thread = job.worker_thread
    job.start()
    assert started.wait(60)
    del window, job  # the window and its job are destroyed here, on the GUI thread
    finish.set()
    thread.join(60)
    assert outcome == [True] and not thread.is_alive()

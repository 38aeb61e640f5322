"""A function run on a Python thread whose results reach the GUI thread, while the thread never
holds a Qt object.

A thread that runs a widget's method, or emits a signal of a QObject the widget owns, holds a
reference to the widget. If the window lets go of the widget first, the thread drops the last
reference when it ends, and Python destroys the widget and its children on that thread while the
GUI thread is processing events: a CI run segfaulted that way in pytest-qt's teardown, after the
GPU dialog's install. Here the thread gets plain objects only: the work function (it must not be
a widget's method), a `CancelToken` and a queue's ``put``. A timer on the GUI thread takes what it
posted and emits the job's signals there. The job is a child of its window: destroying the window
cancels the work, and the thread then ends at its next check without touching anything of it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.cancel import CancelToken

Report = Callable[..., None]
Work = Callable[[CancelToken, Report], Any]

DELIVER_MS = 50  # how often the GUI thread looks for what the thread posted while it runs
END_WAIT_S = 5.0  # the thread has posted its outcome, its last act: it ends at once


class ThreadJob(QObject):
    """Runs ``work(cancel, report)`` on a daemon thread. ``report(*args)`` reaches the GUI thread
    as `progress` (the latest only, when reports come faster than they are delivered); the return
    value as `finished`, an exception as `failed`. `ended` is True from just before either."""

    progress = Signal(object)  # the arguments of the latest report, a tuple
    finished = Signal(object)  # what the work returned
    failed = Signal(object)  # the exception the work raised

    def __init__(self, work: Work, parent: QObject | None = None, name: str = "sprint-job") -> None:
        super().__init__(parent)
        self.cancel = CancelToken()
        self.ended = False
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.worker_thread = threading.Thread(
            target=_run, args=(work, self.cancel, self._queue.put), name=name, daemon=True
        )
        self._timer = QTimer(self, interval=DELIVER_MS)
        self._timer.timeout.connect(self.deliver)
        self.destroyed.connect(self.cancel.cancel)  # the window is gone: the work stops

    def start(self) -> None:
        self.worker_thread.start()
        self._timer.start()

    @property
    def running(self) -> bool:
        """Started and its outcome not delivered yet."""
        return self.worker_thread.ident is not None and not self.ended

    def stop(self, timeout: float) -> bool:
        """Cancel the work, wait up to ``timeout`` seconds for the thread, deliver what it posted;
        True when the job has ended."""
        self.cancel.cancel()
        if self.worker_thread.ident is not None:
            self.worker_thread.join(timeout)
            self.deliver()
        return self.ended

    def deliver(self) -> None:
        """Emit, on the GUI thread, what the thread has posted since the last delivery."""
        latest = None
        while not self.ended:
            try:
                kind, value = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                latest = value
                continue
            if latest is not None:
                self.progress.emit(latest)
                latest = None
            self.worker_thread.join(END_WAIT_S)
            self._timer.stop()
            self.ended = True
            (self.finished if kind == "finished" else self.failed).emit(value)
        if latest is not None:
            self.progress.emit(latest)


def _run(work: Work, cancel: CancelToken, post: Callable[[tuple[str, Any]], None]) -> None:
    """The thread: every report and the outcome go into the queue; the outcome is its last act."""
    try:
        result = work(cancel, lambda *args: post(("progress", args)))
    except BaseException as exc:  # noqa: BLE001 - the thread boundary: the GUI thread reports it
        post(("failed", exc))
    else:
        post(("finished", result))

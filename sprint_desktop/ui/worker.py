"""The only bridge from the GUI to the engine: one long-lived thread that owns the model.

The GUI thread calls `load` and `submit` and never waits. There is one pending slot: a newer
request overwrites it and cancels the one in flight (between steps). Every result carries its
request id; the window drops results older than the newest request it sent. Any exception in the
thread becomes a `failed` signal with a readable message, and the thread keeps serving.

The thread holds nothing of the GUI's: it runs a plain `EngineLoop` (the job slots and the engine)
and emits on a relay object of its own, made and destroyed on it, whose signals are connected to
the worker's (queued to the GUI thread, as before: no polling; one more signal hop per report). A
thread that ran the worker's own method kept a worker the window let go of alive, and
when it ended Python destroyed the worker on it (the GPU dialog crashed that way); a worker
destroyed with its parent made the thread's next emit fail. Now a worker let go is destroyed at
once, on the GUI thread, and that stops its thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..core.cancel import CancelToken
from ..core.errors import GenerationCancelled, SprintError
from ..core.request import GenerateRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadJob:
    model_path: str
    backend: str = "auto"
    device: str | None = None
    compile: str = "off"  # the PyTorch engine's torch.compile mode; ONNX Runtime ignores it


class EngineSignals(QObject):
    """What the engine thread reports; the worker's relay (on the thread) and the worker (on the GUI
    thread) both have them, the relay's connected to the worker's."""

    loading = Signal(str)  # model path
    load_progress = Signal(str)  # a readable step of a long load (e.g. the ONNX export)
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str)
    started = Signal(int)  # request id
    progress = Signal(int, str, int, int)  # request id, stage, step, total
    finished = Signal(int, object)  # request id, GenerateResult
    failed = Signal(int, str)  # request id, message
    cancelled = Signal(int)


RELAYED = tuple(name for name, value in vars(EngineSignals).items() if isinstance(value, Signal))
"""The signals the relay forwards to the worker: all of `EngineSignals`'."""


class EngineWorker(EngineSignals):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loop = EngineLoop()
        self._ids = itertools.count(1)
        handoff: queue.SimpleQueue[EngineSignals] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=_serve, args=(self._loop, handoff.put), name="sprint-engine", daemon=True
        )
        self._thread.start()
        relay = handoff.get()  # the thread's own; it emits nothing before a job comes
        for name in RELAYED:
            getattr(relay, name).connect(getattr(self, name))
        self.destroyed.connect(self._loop.quit)  # let go without `stop`: the thread ends all the same

    @property
    def engine(self) -> Any:
        """The loaded engine (None before the first load); set it to serve a ready one (tests)."""
        return self._loop.engine

    @engine.setter
    def engine(self, engine: Any) -> None:
        self._loop.engine = engine

    # ------------------------------------------------------------------ called from the GUI thread
    def load(
        self, model_path: str, backend: str = "auto", device: str | None = None, compile: str = "off"
    ) -> None:
        loop = self._loop
        with loop.cond:
            loop.load_job = LoadJob(
                model_path, backend, None if device in (None, "auto") else device, compile
            )
            dropped, loop.pending = loop.pending, None
            if loop.cancel is not None:
                loop.cancel.cancel()
            loop.cond.notify()
        if dropped is not None:
            self.cancelled.emit(dropped[0])

    def submit(self, request: GenerateRequest) -> int:
        """Queue ``request`` (replacing any queued one, cancelling the one running); return its id."""
        request_id = next(self._ids)
        loop = self._loop
        with loop.cond:
            dropped, loop.pending = loop.pending, (request_id, request)
            if loop.cancel is not None:
                loop.cancel.cancel()
            loop.cond.notify()
        if dropped is not None:
            self.cancelled.emit(dropped[0])  # every request ends with exactly one signal
        return request_id

    def cancel(self, request_id: int) -> None:
        """Cancel request ``request_id`` (between steps) if it is the one running or queued; it then
        ends with `cancelled`. A request that has already ended is left alone."""
        loop = self._loop
        with loop.cond:
            dropped = None
            if loop.pending is not None and loop.pending[0] == request_id:
                dropped, loop.pending = loop.pending, None
            elif loop.cancel is not None and loop.running_id == request_id:
                loop.cancel.cancel()
        if dropped is not None:
            self.cancelled.emit(request_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the job in flight, end the thread (it closes the engine); wait up to ``timeout`` s."""
        self._loop.quit()
        self._thread.join(timeout)

    @property
    def busy(self) -> bool:
        with self._loop.cond:
            return self._loop.cancel is not None or self._loop.pending is not None


def _serve(loop: EngineLoop, hand_over: Callable[[EngineSignals], None]) -> None:
    """The engine thread: its relay is made here, handed over to be connected, and destroyed here."""
    relay = EngineSignals()
    hand_over(relay)
    loop.run(relay)


class EngineLoop:
    """The thread's side: the job slots (guarded by ``cond``) and the engine; no Qt object of the
    GUI's. `run` serves jobs, reporting through ``out``, until `quit`."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.load_job: LoadJob | None = None
        self.pending: tuple[int, GenerateRequest] | None = None
        self.cancel: CancelToken | None = None
        self.running_id = 0
        self.stopped = False
        self.engine: Any = None

    def quit(self) -> None:
        """Cancel the job in flight; the thread ends after it, closing the engine."""
        with self.cond:
            self.stopped = True
            if self.cancel is not None:
                self.cancel.cancel()
            self.cond.notify()

    def run(self, out: EngineSignals) -> None:
        while True:
            with self.cond:
                while not (self.stopped or self.load_job or self.pending):
                    self.cond.wait()
                if self.stopped:
                    break
                load, self.load_job = self.load_job, None
                job = None
                if load is None:
                    job, self.pending = self.pending, None
                    self.cancel = CancelToken()
                    self.running_id = job[0] if job is not None else 0
                cancel = self.cancel
            if load is not None:
                self._do_load(load, out)
            elif job is not None and cancel is not None:
                self._do_generate(*job, cancel, out)
                with self.cond:
                    self.cancel = None
        if self.engine is not None:
            self.engine.close()

    def _do_load(self, job: LoadJob, out: EngineSignals) -> None:
        out.loading.emit(job.model_path)
        try:
            if self.engine is not None:
                self.engine.close()
                self.engine = None
            from ..factory import choose_backend, create_engine  # torch is imported here, in this thread

            # "auto": ONNX Runtime when the model has an export (no torch import), else PyTorch; a
            # runtime that cannot be imported (the packaged app has no PyTorch) gives the other one.
            backend, notice = choose_backend(job.backend, job.model_path, job.device)
            if notice:
                log.warning("%s", notice)
                out.load_progress.emit(notice)

            def export_progress(component: str, index: int, total: int) -> None:
                if component != "done":
                    out.load_progress.emit(f"exporting to ONNX: {component} ({index + 1} of {total})…")

            def bind_progress(stage: str, done: int, total: int) -> None:
                if stage != "done":
                    out.load_progress.emit(f"{stage}: {done} of {total} MiB of weights…")

            engine = create_engine(
                job.model_path,
                backend=backend,
                device=job.device,
                export_progress=export_progress,
                compile=job.compile,
                **({"bind_progress": bind_progress} if backend == "onnx" else {}),
            )
            info = engine.load()
            if self.stopped:  # the window closed while loading: nobody is listening any more
                engine.close()
                return
        except SprintError as exc:
            if not self.stopped:
                out.load_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the thread boundary: report anything, keep running
            log.error("loading %s failed:\n%s", job.model_path, traceback.format_exc())
            if not self.stopped:
                out.load_failed.emit(f"Could not load the model: {type(exc).__name__}: {exc}")
            return
        self.engine = engine
        out.loaded.emit(info)

    def _do_generate(
        self, request_id: int, request: GenerateRequest, cancel: CancelToken, out: EngineSignals
    ) -> None:
        if self.engine is None:
            out.failed.emit(request_id, "No model is loaded yet.")
            return
        out.started.emit(request_id)
        try:
            result = self.engine.generate(
                request,
                progress=lambda p: out.progress.emit(request_id, p.stage, p.step, p.total),
                cancel=cancel,
                request_id=request_id,
            )
        except GenerationCancelled:
            out.cancelled.emit(request_id)
            return
        except SprintError as exc:
            out.failed.emit(request_id, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the thread boundary
            log.error("request %d failed:\n%s", request_id, traceback.format_exc())
            out.failed.emit(request_id, f"Generation failed: {type(exc).__name__}: {exc}")
            return
        out.finished.emit(request_id, result)

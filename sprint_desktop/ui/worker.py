"""The only bridge from the GUI to the engine: one long-lived thread that owns the model.

The GUI thread calls `load` and `submit` and never waits. There is one pending slot: a newer
request overwrites it and cancels the one in flight (between steps). Every result carries its
request id; the window drops results older than the newest request it sent. Any exception in the
thread becomes a `failed` signal with a readable message, and the thread keeps serving.
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
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


class EngineWorker(QObject):
    loading = Signal(str)  # model path
    load_progress = Signal(str)  # a readable step of a long load (e.g. the ONNX export)
    loaded = Signal(object)  # ModelInfo
    load_failed = Signal(str)
    started = Signal(int)  # request id
    progress = Signal(int, str, int, int)  # request id, stage, step, total
    finished = Signal(int, object)  # request id, GenerateResult
    failed = Signal(int, str)  # request id, message
    cancelled = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._load: LoadJob | None = None
        self._pending: tuple[int, GenerateRequest] | None = None
        self._cancel: CancelToken | None = None
        self._running_id = 0
        self._stop = False
        self._ids = itertools.count(1)
        self.engine: Any = None
        self._thread = threading.Thread(target=self._run, name="sprint-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ called from the GUI thread
    def load(
        self, model_path: str, backend: str = "auto", device: str | None = None, compile: str = "off"
    ) -> None:
        with self._cond:
            self._load = LoadJob(model_path, backend, None if device in (None, "auto") else device, compile)
            dropped, self._pending = self._pending, None
            if self._cancel is not None:
                self._cancel.cancel()
            self._cond.notify()
        if dropped is not None:
            self.cancelled.emit(dropped[0])

    def submit(self, request: GenerateRequest) -> int:
        """Queue ``request`` (replacing any queued one, cancelling the one running); return its id."""
        request_id = next(self._ids)
        with self._cond:
            dropped, self._pending = self._pending, (request_id, request)
            if self._cancel is not None:
                self._cancel.cancel()
            self._cond.notify()
        if dropped is not None:
            self.cancelled.emit(dropped[0])  # every request ends with exactly one signal
        return request_id

    def cancel(self, request_id: int) -> None:
        """Cancel request ``request_id`` (between steps) if it is the one running or queued; it then
        ends with `cancelled`. A request that has already ended is left alone."""
        with self._cond:
            dropped = None
            if self._pending is not None and self._pending[0] == request_id:
                dropped, self._pending = self._pending, None
            elif self._cancel is not None and self._running_id == request_id:
                self._cancel.cancel()
        if dropped is not None:
            self.cancelled.emit(request_id)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            if self._cancel is not None:
                self._cancel.cancel()
            self._cond.notify()
        self._thread.join(timeout)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._cancel is not None or self._pending is not None

    # ------------------------------------------------------------------------- the worker thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._stop or self._load or self._pending):
                    self._cond.wait()
                if self._stop:
                    break
                load, self._load = self._load, None
                job = None
                if load is None:
                    job, self._pending = self._pending, None
                    self._cancel = CancelToken()
                    self._running_id = job[0] if job is not None else 0
                cancel = self._cancel
            if load is not None:
                self._do_load(load)
            elif job is not None and cancel is not None:
                self._do_generate(*job, cancel)
                with self._cond:
                    self._cancel = None
        if self.engine is not None:
            self.engine.close()

    def _do_load(self, job: LoadJob) -> None:
        self.loading.emit(job.model_path)
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
                self.load_progress.emit(notice)

            def export_progress(component: str, index: int, total: int) -> None:
                if component != "done":
                    self.load_progress.emit(f"exporting to ONNX: {component} ({index + 1} of {total})…")

            def bind_progress(stage: str, done: int, total: int) -> None:
                if stage != "done":
                    self.load_progress.emit(f"{stage}: {done} of {total} MiB of weights…")

            engine = create_engine(
                job.model_path,
                backend=backend,
                device=job.device,
                export_progress=export_progress,
                compile=job.compile,
                **({"bind_progress": bind_progress} if backend == "onnx" else {}),
            )
            info = engine.load()
            if self._stop:  # the window closed while loading: nobody is listening any more
                engine.close()
                return
        except SprintError as exc:
            if not self._stop:
                self.load_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the thread boundary: report anything, keep running
            log.error("loading %s failed:\n%s", job.model_path, traceback.format_exc())
            if not self._stop:
                self.load_failed.emit(f"Could not load the model: {type(exc).__name__}: {exc}")
            return
        self.engine = engine
        self.loaded.emit(info)

    def _do_generate(self, request_id: int, request: GenerateRequest, cancel: CancelToken) -> None:
        if self.engine is None:
            self.failed.emit(request_id, "No model is loaded yet.")
            return
        self.started.emit(request_id)
        try:
            result = self.engine.generate(
                request,
                progress=lambda p: self.progress.emit(request_id, p.stage, p.step, p.total),
                cancel=cancel,
                request_id=request_id,
            )
        except GenerationCancelled:
            self.cancelled.emit(request_id)
            return
        except SprintError as exc:
            self.failed.emit(request_id, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the thread boundary
            log.error("request %d failed:\n%s", request_id, traceback.format_exc())
            self.failed.emit(request_id, f"Generation failed: {type(exc).__name__}: {exc}")
            return
        self.finished.emit(request_id, result)

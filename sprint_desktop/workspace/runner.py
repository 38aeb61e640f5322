"""How the workspace reaches an engine: a `Runner` runs loads and requests and reports back through
the workspace's ``on_*`` methods. The app's runner is `ui.worker.EngineWorker` (a thread);
`InlineRunner` runs the same jobs in the caller's thread, one at a time when asked (tests, scripts).

Contract (the worker's): one pending slot; a newer request replaces the waiting one, which is
reported cancelled; every submitted request ends with exactly one of finished / failed / cancelled.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..core.errors import GenerationCancelled, SprintError
from ..core.request import GenerateRequest

if TYPE_CHECKING:
    from ..engine.base import Engine
    from .workspace import Workspace


class Runner(Protocol):
    def load(
        self, model_path: str, backend: str = "torch", device: str | None = None, compile: str = "off"
    ) -> None: ...

    def submit(self, request: GenerateRequest) -> int: ...

    def cancel(self, request_id: int) -> None: ...


class InlineRunner:
    """Runs jobs for ``workspace`` through engines made by ``make_engine(path, backend, device,
    compile)``, in this thread, when `run_next` / `run_all` is called."""

    def __init__(self, make_engine: Callable[[str, str, str | None, str], Engine]) -> None:
        self.make_engine = make_engine
        self.workspace: Workspace | None = None
        self.engine: Engine | None = None
        self._load: tuple[str, str, str | None, str] | None = None
        self.pending: tuple[int, GenerateRequest] | None = None
        self.submitted: list[GenerateRequest] = []
        self._ids = itertools.count(1)

    def bind(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def load(
        self, model_path: str, backend: str = "torch", device: str | None = None, compile: str = "off"
    ) -> None:
        self._load = (model_path, backend, device, compile)
        self._drop_pending()

    def submit(self, request: GenerateRequest) -> int:
        request_id = next(self._ids)
        self._drop_pending()
        self.pending = (request_id, request)
        self.submitted.append(request)
        return request_id

    def cancel(self, request_id: int) -> None:
        """Cancel ``request_id`` if it waits (it ends with `on_cancelled`); jobs run inline cannot
        be interrupted, and an ended one is left alone."""
        if self.pending is not None and self.pending[0] == request_id:
            self._drop_pending()

    def _drop_pending(self) -> None:
        dropped, self.pending = self.pending, None
        if dropped is not None:
            self._ws.on_cancelled(dropped[0])

    @property
    def _ws(self) -> Workspace:
        assert self.workspace is not None, "bind the runner to a workspace first"
        return self.workspace

    @property
    def idle(self) -> bool:
        return self._load is None and self.pending is None

    def run_next(self) -> bool:
        """Run the waiting load, else the waiting request; False when there was nothing to run."""
        if self._load is not None:
            load, self._load = self._load, None
            self._run_load(*load)
            return True
        if self.pending is None:
            return False
        (request_id, request), self.pending = self.pending, None
        self._run_request(request_id, request)
        return True

    def run_all(self, limit: int = 100) -> int:
        """Run jobs until none is waiting (jobs may queue more); the number run."""
        count = 0
        while count < limit and self.run_next():
            count += 1
        return count

    def _run_load(self, path: str, backend: str, device: str | None, compile: str) -> None:
        self._ws.on_loading(path)
        try:
            engine = self.make_engine(path, backend, device, compile)
            info = engine.load()
        except SprintError as exc:
            self._ws.on_load_failed(str(exc))
            return
        self.engine = engine
        self._ws.on_loaded(info)

    def _run_request(self, request_id: int, request: GenerateRequest) -> None:
        if self.engine is None:
            self._ws.on_failed(request_id, "No model is loaded yet.")
            return
        progress: Any = lambda p: self._ws.on_progress(request_id, p.stage, p.step, p.total)  # noqa: E731
        try:
            result = self.engine.generate(request, progress=progress, request_id=request_id)
        except GenerationCancelled:
            self._ws.on_cancelled(request_id)
        except SprintError as exc:
            self._ws.on_failed(request_id, str(exc))
        else:
            self._ws.on_finished(request_id, result)

"""`EngineWorker.cancel(request_id)`: stops that request between steps, and only that one (a
refinement is cancelled by new input this way, while an explicit Generate is never touched)."""

from __future__ import annotations

import threading

import numpy as np

from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.base import Engine, ModelInfo
from sprint_desktop.ui.worker import EngineWorker


class GatedEngine(Engine):
    """A numpy engine behind the real interface whose steps wait for ``gate`` (no model involved)."""

    backend_name = "fake"
    vae_scale_factor = 8
    max_sequence_length = 4

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.steps_run = 0

    def load(self) -> ModelInfo:
        return ModelInfo("fake", "", "fake", "cpu", "float32", 16, 16, 8, 4, 4)

    def close(self) -> None:
        pass

    def encode_prompt(self, prompt):
        return np.zeros((1, 4, 8), np.float32), np.ones((1, 4), np.int64), False, False

    def denoise(self, request, embeds, mask, noise, report=None, check=None):
        for _ in range(request.steps):
            self.gate.wait(5)
            check()
            self.steps_run += 1
        return noise[0]

    def decode(self, latents):
        return np.zeros((latents.shape[0], 16, 16, 3), np.float32)


def test_cancel_stops_that_request_between_steps_and_no_other(qtbot):
    worker = EngineWorker()
    engine = GatedEngine()
    worker.engine = engine
    started, cancelled, finished = [], [], []
    worker.started.connect(started.append)
    worker.cancelled.connect(cancelled.append)
    worker.finished.connect(lambda i, r: finished.append(i))
    try:
        running = worker.submit(GenerateRequest("a", steps=4))
        qtbot.waitUntil(lambda: running in started, timeout=5000)
        worker.cancel(running + 100)  # not this one: nothing happens
        worker.cancel(running)
        engine.gate.set()
        qtbot.waitUntil(lambda: running in cancelled, timeout=5000)
        assert engine.steps_run < 4 and not finished
        nxt = worker.submit(GenerateRequest("b", steps=1))
        qtbot.waitUntil(lambda: nxt in finished, timeout=5000)
        worker.cancel(nxt)  # already ended: left alone, no second signal
        qtbot.wait(50)
        assert nxt not in cancelled
    finally:
        engine.gate.set()
        worker.stop()


def test_cancel_drops_a_queued_request_with_one_signal(qtbot):
    worker = EngineWorker()
    cancelled = []
    worker.cancelled.connect(cancelled.append)
    try:
        with worker._loop.cond:  # hold the thread: the request is still queued
            queued = worker.submit(GenerateRequest("a"))
            worker.cancel(queued)
        qtbot.waitUntil(lambda: queued in cancelled, timeout=5000)
        qtbot.wait(50)
        assert cancelled.count(queued) == 1
    finally:
        worker.stop()

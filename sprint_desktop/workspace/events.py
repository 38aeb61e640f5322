"""A minimal observer: the workspace announces changes; panels (or tests) subscribe.

Qt-free on purpose (the workspace is tested without a window); every call happens on the thread
that drives the workspace, the GUI thread in the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, ParamSpec

import numpy as np

from ..core.request import Timings

if TYPE_CHECKING:
    from ..engine.base import ModelInfo
    from .params import Params

P = ParamSpec("P")


class Event(Generic[P]):
    """``event.connect(callback)``; ``event.emit(*args)`` calls every callback in order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[P, object]] = []

    def connect(self, callback: Callable[P, object]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[P, object]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in list(self._callbacks):
            callback(*args, **kwargs)


@dataclass(frozen=True)
class ModelState:
    phase: str
    """"none", "loading", "ready" or "failed"."""
    text: str
    """What the status bar says about the model."""
    info: ModelInfo | None = None


class WorkspaceEvents:
    """What panels subscribe to. Images are uint8 (H, W, 3) arrays, or None to clear a view."""

    def __init__(self) -> None:
        self.params_changed: Event[[Params]] = Event()
        self.model_changed: Event[[ModelState]] = Event()
        self.prompt_image: Event[[np.ndarray | None]] = Event()
        self.live_image: Event[[np.ndarray | None]] = Event()
        self.timings: Event[[Timings]] = Event()
        self.progress: Event[[int, int]] = Event()
        self.error: Event[[str]] = Event()  # "" clears the message
        self.status: Event[[str, int]] = Event()  # text, milliseconds to show it (0: until replaced)
        self.hint: Event[[str]] = Event()  # about the prompt: unknown words, too many words
        self.gallery_changed: Event[[]] = Event()
        self.wake: Event[[float]] = Event()  # call `pump` again in this many seconds

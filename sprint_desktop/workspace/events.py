"""A minimal observer: the workspace announces changes; panels (or tests) subscribe.

Qt-free on purpose (the workspace is tested without a window); every call happens on the thread
that drives the workspace, the GUI thread in the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


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

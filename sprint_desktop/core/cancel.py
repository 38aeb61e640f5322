"""A thread-safe cancellation flag checked by the engine between steps."""

from __future__ import annotations

import threading


class CancelToken:
    """Set from any thread; the engine raises `GenerationCancelled` at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

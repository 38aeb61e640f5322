"""When the live canvas should run: a pure scheduling class, tested with a fake clock.

Rules (after Krita AI Diffusion's live mode):
- at most one job in flight; a change while one runs waits for it to finish;
- after the last change, wait an adaptive debounce: none when generation is fast (the image
  follows the pen job after job), up to ``debounce`` when the last job was slow (so a slow machine
  does not spend a whole job on a half-drawn stroke);
- while the user keeps drawing, force a refresh so the image follows: after two job times (at
  least ``debounce``, at most ``max_wait``), so a machine where a job takes 0.2 s still shows
  several images a second under a moving pen instead of one every ``max_wait``;
- never run the same request twice in a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass
class LiveScheduler(Generic[R]):
    debounce: float = 0.15
    """Longest wait after the last change, seconds."""
    max_wait: float = 2.0
    """Longest time a continuously changing canvas goes without a run, seconds (the refresh comes
    sooner when jobs are quick: see `refresh_time`)."""
    fast: float = 0.1
    """Jobs quicker than this (seconds) run back to back with no debounce."""

    def __post_init__(self) -> None:
        self.pending: R | None = None
        self.last_run: R | None = None
        self.in_flight = False
        self.last_change = 0.0
        self.first_change: float | None = None
        self.last_duration = 0.0

    def change(self, request: R, now: float) -> None:
        """The canvas or the prompt changed to ``request``."""
        self.pending = request
        self.last_change = now
        if self.first_change is None:
            self.first_change = now

    def wait_time(self) -> float:
        """The debounce adapts to the speed of generation: none for fast jobs, else half the last
        job's time, capped at ``debounce``."""
        if self.last_duration < self.fast:
            return 0.0
        return min(self.debounce, 0.5 * self.last_duration)

    def refresh_time(self) -> float:
        """How long a continuously changing canvas waits for a pause before it runs anyway: two of
        the last job's times, between ``debounce`` and ``max_wait``."""
        return min(self.max_wait, max(self.debounce, 2.0 * self.last_duration))

    def poll(self, now: float) -> R | None:
        """The request to start now, or None. Call on every timer tick and after every event."""
        if self.in_flight or self.pending is None:
            return None
        if self.pending == self.last_run:
            self.pending, self.first_change = None, None
            return None
        quiet = now - self.last_change >= self.wait_time()
        overdue = self.first_change is not None and now - self.first_change >= self.refresh_time()
        if not (quiet or overdue):
            return None
        request, self.pending = self.pending, None
        self.first_change = None
        self.in_flight = True
        self.last_run = request
        self._running = request
        self._started = now
        return request

    def finished(self, now: float, completed: bool = True) -> None:
        """The job in flight ended; ``completed=False`` for an error or a cancel, so that the same
        request may run again (its image was never shown)."""
        self.in_flight = False
        if completed:
            self.last_duration = max(0.0, now - getattr(self, "_started", now))
            return
        self.last_run = None
        if self.pending is None:  # nothing newer: the interrupted request runs again
            self.pending = getattr(self, "_running", None)
            self.last_change = now - self.debounce

    def next_check(self, now: float) -> float | None:
        """Seconds until `poll` may return a request (for a single-shot timer), or None if idle."""
        if self.in_flight or self.pending is None:
            return None
        until_quiet = self.last_change + self.wait_time() - now
        until_overdue = (self.first_change or now) + self.refresh_time() - now
        return max(0.0, min(until_quiet, until_overdue))

"""When the live canvas should run: a pure scheduling class, tested with a fake clock.

Rules (after Krita AI Diffusion's live mode, without its idle time):
- at most one job in flight, nothing queued behind it: a change while one runs replaces the
  pending request (the latest wins);
- no idle time while the input keeps changing: when a job ends and the request changed meanwhile,
  the next job starts at once; a job never waits for a pause that a moving pen never gives;
- a change after a quiet spell starts a job at once when jobs are fast, or after an adaptive
  debounce counted from that first change (half the last job's time, at most ``debounce``) when
  they are slow, so a slow machine does not spend a whole job on the first dot of a stroke;
- never run the same request twice in a row;
- "instant, then refine": with a ``refine`` function, once the input has paused for
  ``refine_after`` seconds after an image was shown, its refinement (the same request at the
  model's best step count) runs; any new input cancels it (`change` says so) and starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass
class LiveScheduler(Generic[R]):
    debounce: float = 0.15
    """Longest wait after the first change of a burst, seconds (only when jobs are slow)."""
    fast: float = 0.1
    """Jobs quicker than this (seconds) start with no debounce at all."""
    refine_after: float = 0.4
    """Quiet time (seconds since the last change and since the image was shown) before refining."""
    refine: Callable[[R], R | None] | None = None
    """The refinement of a shown request, or None when it needs none; None here: never refine."""

    def __post_init__(self) -> None:
        self.pending: R | None = None
        self.last_run: R | None = None
        """The newest request started (not its refinement): the one shown or about to be."""
        self.in_flight = False
        self.refining = False
        """The job in flight is a refinement (any new input cancels it)."""
        self.last_change = 0.0
        self.first_change: float | None = None
        self.last_duration = 0.0
        self.last_finished: float | None = None
        self.shown: R | None = None
        """The last request whose image was shown, while its refinement is still to come."""
        self.shown_at = 0.0
        self.refined: R | None = None
        """The refinement shown last (None after any new image)."""
        self._running: R | None = None
        self._started = 0.0

    # ------------------------------------------------------------------------------- input
    def change(self, request: R, now: float) -> bool:
        """The canvas or the prompt changed to ``request``. Returns True when the job in flight is a
        refinement that this change makes stale: cancel it (then call `finished` with
        ``completed=False``)."""
        if request == self.last_run and self.pending is None:
            return False  # back to what is shown (or running): nothing new to draw
        self.pending = request
        self.last_change = now
        if self.first_change is None:
            self.first_change = now
        self.shown = None  # the shown image is about to be replaced: do not refine it
        return self.in_flight and self.refining

    def show(self, request: R, now: float) -> None:
        """An image of ``request`` was shown by other means (an explicit Generate): refine it after
        a pause, as if this scheduler had run it."""
        self.last_run = request
        self.pending, self.first_change = None, None
        self.shown, self.shown_at, self.refined = request, now, None

    def interrupt(self, now: float) -> bool:
        """New input that makes no request of its own (a keystroke in the prompt): the shown image
        is not refined. Returns True when a refinement is in flight: cancel it."""
        self.last_change = now
        self.shown = None
        return self.in_flight and self.refining

    def wait_time(self) -> float:
        """The debounce adapts to the speed of generation: none for fast jobs, else half the last
        job's time, capped at ``debounce``."""
        if self.last_duration < self.fast:
            return 0.0
        return min(self.debounce, 0.5 * self.last_duration)

    def _start_time(self) -> float:
        """When the pending request may start: at once when it changed while a job ran (no idle
        time), else `wait_time` after the burst's first change."""
        first = self.first_change if self.first_change is not None else self.last_change
        if self.last_finished is not None and first <= self.last_finished:
            return self.last_finished
        return first + self.wait_time()

    def _refine_time(self) -> float | None:
        if self.refine is None or self.shown is None:
            return None
        return max(self.last_change, self.shown_at) + self.refine_after

    # ------------------------------------------------------------------------------- output
    def poll(self, now: float) -> R | None:
        """The request to start now, or None. Call on every timer tick and after every event."""
        if self.in_flight:
            return None
        if self.pending is not None and self.pending == self.last_run:
            self.pending, self.first_change = None, None
        if self.pending is not None:
            if now < self._start_time():
                return None
            request, self.pending = self.pending, None
            self.first_change = None
            self.last_run = request
            return self._start(request, now, refining=False)
        refine_at = self._refine_time()
        if refine_at is None or now < refine_at:
            return None
        assert self.refine is not None and self.shown is not None
        refined = self.refine(self.shown)
        self.shown = None  # one refinement per shown image
        if refined is None or refined == self.last_run:
            return None
        return self._start(refined, now, refining=True)

    def _start(self, request: R, now: float, refining: bool) -> R:
        self.in_flight = True
        self.refining = refining
        self._running = request
        self._started = now
        return request

    def finished(self, now: float, completed: bool = True, failed: bool = False) -> None:
        """The job in flight ended; ``completed=False`` for a cancel, so that the same request may
        run again (its image was never shown); ``failed=True`` for an error: not run again (it
        would fail again) and not refined. A refinement is never retried."""
        self.in_flight = False
        self.last_finished = now
        if self.refining:
            self.refining = False
            if completed and not failed:
                self.refined = self._running
            return
        if completed or failed:
            self.last_duration = max(0.0, now - self._started)
            self.refined = None
            if self.pending is None and not failed:
                self.shown, self.shown_at = self._running, now
            return
        self.last_run = None
        if self.pending is None:  # nothing newer: the interrupted request runs again
            self.pending = self._running
            self.last_change = now
            self.first_change = now

    def next_check(self, now: float) -> float | None:
        """Seconds until `poll` may return a request (for a single-shot timer), or None if idle."""
        if self.in_flight:
            return None
        if self.pending is not None and self.pending != self.last_run:
            return max(0.0, self._start_time() - now)
        refine_at = self._refine_time()
        return None if refine_at is None else max(0.0, refine_at - now)

    @property
    def idle(self) -> bool:
        """Nothing in flight, nothing pending, no refinement to come."""
        return not self.in_flight and self.next_check(0.0) is None

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from sprint_desktop.core.live import LiveScheduler


def test_one_job_in_flight_and_latest_wins():
    s = LiveScheduler[str](debounce=0.1)
    s.change("a", now=0.0)
    assert s.poll(0.0) == "a"  # nothing measured yet: no debounce
    s.change("b", now=0.01)
    s.change("c", now=0.02)
    assert s.poll(0.5) is None  # "a" is still running
    s.finished(now=0.6)
    assert s.poll(0.6) == "c"  # "b" was overwritten


def test_adaptive_debounce_after_a_slow_job_and_a_quiet_spell():
    s = LiveScheduler[str](debounce=0.15)
    s.change("a", 0.0)
    s.poll(0.0)
    s.finished(1.0)  # a slow job: the full debounce applies to the next burst
    s.change("b", 1.5)
    assert s.poll(1.6) is None
    assert abs(s.next_check(1.6) - 0.05) < 1e-9
    assert s.poll(1.66) == "b"


def test_the_debounce_counts_from_the_first_change_so_a_moving_pen_cannot_hold_it_back():
    s = LiveScheduler[int](debounce=0.15)
    s.change(0, 0.0)
    s.poll(0.0)
    s.finished(1.0)
    for i, t in enumerate([2.0, 2.05, 2.1], start=1):  # never quiet for 0.15 s
        s.change(i, t)
        assert s.poll(t) is None
    s.change(4, 2.15)
    assert s.poll(2.15) == 4


def test_fast_jobs_follow_the_pen_without_debounce():
    s = LiveScheduler[str](debounce=0.15, fast=0.1)
    s.change("a", 0.0)
    s.poll(0.0)
    s.finished(0.02)  # 20 ms jobs
    s.change("b", 0.5)
    assert s.poll(0.5) == "b"


def test_medium_jobs_get_half_their_time_as_debounce():
    s = LiveScheduler[str](debounce=0.15, fast=0.1)
    s.change("a", 0.0)
    s.poll(0.0)
    s.finished(0.2)  # 200 ms jobs: wait min(0.15, 0.1)
    s.change("b", 0.3)
    assert s.poll(0.35) is None
    assert s.poll(0.41) == "b"


def _draw_continuously(s: LiveScheduler[int], job: float, seconds: float, tick: float = 0.01) -> list[float]:
    """A stroke every 50 ms for ``seconds`` with jobs of ``job`` seconds, the scheduler polled every
    ``tick``; the runs' start times."""
    s.change(0, 0.0)
    s.poll(0.0)
    started, running_until, stroke = [0.0], job, 0
    for k in range(1, int(seconds / tick)):
        t = k * tick
        if running_until is not None and t >= running_until - 1e-9:
            s.finished(t)
            running_until = None
        if k % round(0.05 / tick) == 0:
            stroke += 1
            s.change(stroke, t)
        if s.poll(t) is not None:
            started.append(t)
            running_until = t + job
    return started


@pytest.mark.parametrize("job", [0.03, 0.08, 0.3, 1.5])
def test_no_idle_time_while_the_pen_moves(job):
    """Whatever the job time, the next job starts when the previous one ends (a 0.3 s job with the
    old fixed 2 s refresh showed one image every 2 s; with a refresh at two job times, one every
    0.6-0.9 s)."""
    started = _draw_continuously(LiveScheduler[int](debounce=0.15), job=job, seconds=4.0)
    gaps = [b - a for a, b in zip(started, started[1:], strict=False)]
    assert gaps and all(g <= max(job, 0.05) + 0.01 + 1e-9 for g in gaps), gaps
    assert len(started) >= int(4.0 / max(job, 0.05)) - 1


def test_no_run_when_nothing_changed():
    s = LiveScheduler[str]()
    s.change("a", 0.0)
    assert s.poll(0.0) == "a"
    s.finished(0.01)
    s.change("a", 0.02)
    assert s.poll(1.0) is None
    assert s.next_check(1.0) is None and s.idle


def test_burst_of_50_changes_during_slow_jobs_ends_on_the_last():
    s = LiveScheduler[int](debounce=0.1)
    runs = []
    t = 0.0
    running_until = None
    for i in range(50):
        t += 0.01
        s.change(i, t)
        if running_until is not None and t >= running_until:
            s.finished(t)
            running_until = None
        r = s.poll(t)
        if r is not None:
            runs.append(r)
            running_until = t + 0.3
    while not s.idle:
        t += 0.01
        if running_until is not None and t >= running_until:
            s.finished(t)
            running_until = None
        r = s.poll(t)
        if r is not None:
            runs.append(r)
            running_until = t + 0.3
    assert len(runs) <= 3 and runs[-1] == 49  # 0.5 s of input, 0.3 s jobs: nothing queued behind


def test_a_cancelled_job_runs_again_unless_something_newer_came():
    s = LiveScheduler[str](debounce=0.1)
    s.change("a", 0.0)
    assert s.poll(0.0) == "a"
    s.finished(0.05, completed=False)  # cancelled: its image was never shown
    assert s.poll(0.05) == "a"
    s.change("b", 0.06)
    s.finished(0.07, completed=False)
    assert s.poll(0.07) == "b"  # the newer request wins over the cancelled one, at once


# ---------------------------------------------------------------------------- instant, then refine
@dataclass(frozen=True)
class Req:
    sketch: int
    steps: int = 1
    seed: int = 7


def _refining(after: float = 0.4) -> LiveScheduler[Req]:
    return LiveScheduler[Req](
        refine_after=after, refine=lambda r: replace(r, steps=4) if r.steps < 4 else None
    )


def test_the_instant_image_is_refined_with_the_same_seed_once_the_input_pauses():
    s = _refining()
    s.change(Req(1), 0.0)
    assert s.poll(0.0) == Req(1)
    s.finished(0.04)  # the 1-step image is shown
    assert s.poll(0.3) is None and abs(s.next_check(0.3) - 0.14) < 1e-9
    assert s.poll(0.44) == Req(1, steps=4, seed=7)
    assert s.refining
    s.finished(0.6)
    assert s.refined == Req(1, steps=4) and s.poll(5.0) is None and s.idle  # refined once


def test_a_newer_input_cancels_the_refinement_and_runs_first():
    s = _refining()
    s.change(Req(1), 0.0)
    s.poll(0.0)
    s.finished(0.04)
    assert s.poll(0.5) == Req(1, steps=4)
    assert s.change(Req(2), 0.55) is True  # cancel the refinement in flight
    s.finished(0.56, completed=False)
    assert s.poll(0.56) == Req(2)  # the new instant image, at once
    s.finished(0.6)
    assert s.refined is None  # the refinement of the old sketch never showed
    assert s.poll(1.0) == Req(2, steps=4)  # and the new one is refined after its own pause


def test_input_that_keeps_coming_is_never_refined():
    s = _refining()
    t = 0.0
    s.change(Req(0), t)
    s.poll(t)
    for i in range(1, 40):
        s.finished(t + 0.04)
        t += 0.05
        assert s.change(Req(i), t) is False  # nothing to cancel: only instant jobs ran
        assert s.poll(t) == Req(i)
    assert not s.refining


def test_a_change_back_to_the_shown_request_keeps_the_refinement():
    s = _refining()
    s.change(Req(1), 0.0)
    s.poll(0.0)
    s.finished(0.04)
    assert s.poll(0.5) == Req(1, steps=4)
    assert s.change(Req(1), 0.55) is False  # e.g. a control moved and back: same request
    s.finished(0.7)
    assert s.refined == Req(1, steps=4) and s.poll(0.7) is None


def test_no_refinement_when_the_model_needs_none_or_it_is_off():
    s = LiveScheduler[Req](refine=lambda r: None)
    s.change(Req(1), 0.0)
    s.poll(0.0)
    s.finished(0.04)
    assert s.poll(5.0) is None and s.idle
    off = LiveScheduler[Req]()
    off.change(Req(1), 0.0)
    off.poll(0.0)
    off.finished(0.04)
    assert off.next_check(0.04) is None


def test_a_failed_refinement_is_not_retried():
    s = _refining()
    s.change(Req(1), 0.0)
    s.poll(0.0)
    s.finished(0.04)
    s.poll(0.5)
    s.finished(0.6, completed=False)
    assert s.poll(5.0) is None and s.idle


def test_an_image_shown_by_other_means_is_refined_and_a_keystroke_cancels_that():
    """The prompt's Generate runs outside the scheduler; its image is refined after a pause, and
    typing (input that makes no request yet) cancels the refinement."""
    s = _refining()
    s.show(Req(1), 0.0)
    assert s.poll(0.2) is None and s.poll(0.4) == Req(1, steps=4)
    assert s.interrupt(0.5) is True  # a refinement is running: cancel it
    s.finished(0.51, completed=False)
    assert s.poll(5.0) is None and s.idle  # the old prompt's image is not refined any more
    s.show(Req(2), 6.0)
    assert s.interrupt(6.1) is False  # nothing running: only the coming refinement is dropped
    assert s.poll(7.0) is None


def test_a_failed_request_is_neither_retried_nor_refined():
    s = _refining()
    s.change(Req(1), 0.0)
    s.poll(0.0)
    s.finished(0.04, failed=True)
    assert s.poll(5.0) is None and s.idle

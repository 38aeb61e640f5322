from __future__ import annotations

from sprint_desktop.core.live import LiveScheduler


def test_one_job_in_flight_and_latest_wins():
    s = LiveScheduler[str](debounce=0.1, max_wait=2.0)
    s.change("a", now=0.0)
    assert s.poll(0.0) == "a"  # nothing measured yet: no debounce
    s.change("b", now=0.01)
    s.change("c", now=0.02)
    assert s.poll(0.5) is None  # "a" is still running
    s.finished(now=0.6)
    assert s.poll(0.6) == "c"  # "b" was overwritten


def test_adaptive_debounce_after_a_slow_job():
    s = LiveScheduler[str](debounce=0.15, max_wait=2.0)
    s.change("a", 0.0)
    s.poll(0.0)
    s.finished(1.0)  # a slow job: the full debounce applies
    s.change("b", 1.0)
    assert s.poll(1.1) is None
    assert abs(s.next_check(1.1) - 0.05) < 1e-9
    assert s.poll(1.16) == "b"


def test_fast_jobs_follow_the_pen_without_debounce():
    s = LiveScheduler[str](debounce=0.15, max_wait=2.0, fast=0.1)
    s.change("a", 0.0)
    s.poll(0.0)
    s.finished(0.02)  # 20 ms jobs
    s.change("b", 0.03)
    assert s.poll(0.03) == "b"


def test_medium_jobs_get_half_their_time_as_debounce():
    s = LiveScheduler[str](debounce=0.15, max_wait=2.0, fast=0.1)
    s.change("a", 0.0)
    s.poll(0.0)
    s.finished(0.2)  # 200 ms jobs: wait min(0.15, 0.1)
    s.change("b", 0.3)
    assert s.poll(0.35) is None
    assert s.poll(0.41) == "b"


def _draw_continuously(s: LiveScheduler[int], job: float, seconds: float) -> list[float]:
    """A stroke every 50 ms for ``seconds`` with jobs of ``job`` seconds; the runs' start times."""
    s.change(0, 0.0)
    s.poll(0.0)
    s.finished(job)
    started = []
    t, running_until = job, None
    for i in range(1, int(seconds / 0.05)):
        t += 0.05
        if running_until is not None and t >= running_until:
            s.finished(t)
            running_until = None
        s.change(i, t)
        r = s.poll(t)
        if r is not None:
            started.append(t)
            running_until = t + job
    return started


def test_forced_refresh_follows_the_pen_at_two_job_times():
    """Jobs of 0.3 s and a stroke every 50 ms: never quiet, yet a run about every two job times
    (a fixed 2 s refresh here showed one image every 2 s: the pen left the image behind)."""
    started = _draw_continuously(LiveScheduler[int](debounce=0.15, max_wait=2.0), job=0.3, seconds=3.0)
    assert len(started) >= 4
    assert all(b - a <= 0.3 + 0.6 + 0.06 for a, b in zip([0.3, *started], started, strict=False))


def test_forced_refresh_is_capped_at_max_wait_for_very_slow_jobs():
    s = LiveScheduler[int](debounce=0.15, max_wait=1.0)
    started = _draw_continuously(s, job=1.5, seconds=8.0)
    assert s.refresh_time() == 1.0
    assert all(b - a <= 1.5 + 1.0 + 0.06 for a, b in zip([1.5, *started], started, strict=False))
    assert len(started) >= 2


def test_no_run_when_nothing_changed():
    s = LiveScheduler[str]()
    s.change("a", 0.0)
    assert s.poll(0.0) == "a"
    s.finished(0.01)
    s.change("a", 0.02)
    assert s.poll(1.0) is None
    assert s.next_check(1.0) is None


def test_burst_of_50_changes_gives_few_runs_and_ends_on_the_last():
    s = LiveScheduler[int](debounce=0.1, max_wait=2.0)
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
    while s.pending is not None or s.in_flight:
        t += 0.01
        if running_until is not None and t >= running_until:
            s.finished(t)
            running_until = None
        r = s.poll(t)
        if r is not None:
            runs.append(r)
            running_until = t + 0.3
    assert len(runs) <= 5 and runs[-1] == 49


def test_a_cancelled_job_runs_again_unless_something_newer_came():
    s = LiveScheduler[str](debounce=0.1, max_wait=2.0)
    s.change("a", 0.0)
    assert s.poll(0.0) == "a"
    s.finished(0.05, completed=False)  # cancelled: its image was never shown
    assert s.poll(0.05) == "a"
    s.change("b", 0.06)
    s.finished(0.07, completed=False)
    assert s.poll(0.5) == "b"  # the newer request wins over the cancelled one

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


def test_fast_jobs_get_a_short_debounce():
    s = LiveScheduler[str](debounce=0.15, max_wait=2.0)
    s.change("a", 0.0)
    s.poll(0.0)
    s.finished(0.02)  # 20 ms jobs: wait 10 ms
    s.change("b", 0.03)
    assert s.poll(0.035) is None
    assert s.poll(0.04) == "b"


def test_forced_refresh_while_drawing_continuously():
    s = LiveScheduler[int](debounce=0.15, max_wait=1.0)
    s.change(0, 0.0)
    s.poll(0.0)
    s.finished(0.5)
    started = []
    t = 0.5
    for i in range(1, 60):  # a stroke event every 50 ms for 3 s: never quiet
        t += 0.05
        s.change(i, t)
        r = s.poll(t)
        if r is not None:
            started.append((t, r))
            s.finished(t + 0.01)
    assert 2 <= len(started) <= 4  # about one per max_wait
    assert started[0][0] - 0.5 <= 1.1


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
            running_until = t + 0.08
    while s.pending is not None or s.in_flight:
        t += 0.01
        if running_until is not None and t >= running_until:
            s.finished(t)
            running_until = None
        r = s.poll(t)
        if r is not None:
            runs.append(r)
            running_until = t + 0.08
    assert len(runs) <= 5 and runs[-1] == 49

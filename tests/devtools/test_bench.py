"""`sprint bench` on the tiny random-weight architecture (a source install has the devtools)."""

from __future__ import annotations

import json

from sprint_desktop.cli import main


def test_bench_without_warmup_times_the_first_runs(tmp_path, capsys):
    """``--warmup 0`` is a real question (how slow is the first image?): the cached case is a cache
    hit from its first timed run, because the bench primes that prompt before it times anything."""
    out = tmp_path / "bench.json"
    args = ["bench", "--arch", "tiny", "--steps", "1,2", "--repeats", "1", "--warmup", "0", "--no-stock"]
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["warmup"] == 0 and report["repeats"] == 1
    assert set(report["results"]) == {"1", "2"}
    for row in report["results"].values():
        assert row["ours_new"]["encode_ms"] > 0 and row["ours_cached"]["total_ms"] > 0
    assert "after 0 warm-up" in capsys.readouterr().out

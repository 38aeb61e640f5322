"""The student's guard: best-judged weights kept, a collapse the loss does not show stops the run."""

from __future__ import annotations

import pytest

from sprint_desktop.distill.student_guard import Best, collapse_message, score, verdict


def test_score_is_the_mean_judge_and_absent_without_an_evaluation():
    assert score({"step": 5, "scm": -0.4}) is None
    assert score({"judge_1step": 0.2, "judge_2step": 0.4, "judge_4step": 0.6}) == pytest.approx(0.4)


def test_verdict_sees_a_new_best_and_a_collapse_after_a_good_evaluation():
    first = {"judge_1step": 0.0, "judge_2step": 0.0, "judge_4step": 0.0}
    assert verdict(Best(), first) == "best"  # an untrained student's zeros are its first best
    good = {"judge_1step": 0.21, "judge_2step": 0.38, "judge_4step": 0.49}
    assert verdict(Best(step=500, score=0.35), good) == "best"
    assert verdict(Best(step=750, score=0.36), {"judge_1step": 0.2, "judge_2step": 0.3}) is None
    assert verdict(Best(step=750, score=0.36), first) == "collapse"
    assert verdict(Best(step=250, score=0.0), first) is None  # zeros after zeros: not yet trained
    assert verdict(Best(step=750, score=0.36), {"step": 800}) is None


def test_best_survives_a_restart(tmp_path):
    (tmp_path / "best").mkdir()
    Best(step=750, score=0.36).save(tmp_path)
    assert Best.load(tmp_path) == Best(step=750, score=0.36)
    assert Best.load(tmp_path / "elsewhere") == Best()
    msg = collapse_message(tmp_path, Best(step=750, score=0.36), 1000)
    assert "step 1000" in msg and "0.360 at step 750" in msg and "\n" not in msg

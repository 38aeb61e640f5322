"""The model card's table: distribution columns computed against renders of the same scenes."""

from __future__ import annotations

import numpy as np

from sprint_desktop.distill.evaluate import distribution_scores, format_rows, reference
from sprint_desktop.distill.train_student import StudentConfig, eval_captions, eval_scenes
from sprint_desktop.distill.world import HELD_OUT, render

from .grids import assert_one_tile_per_grid_prompt


def test_eval_scenes_are_half_held_out_and_match_the_captions():
    scenes = eval_scenes(40)
    assert [s.caption for s in scenes] == eval_captions(40)
    held = [any((o.color, o.shape) in HELD_OUT for o in s.objects) for s in scenes]
    assert not any(held[:20]) and all(held[20:])


def test_the_student_picks_its_best_weights_on_other_captions_than_the_card_reports():
    picked = {repr(s) for s in eval_scenes(96, StudentConfig().eval_seed)}
    reported = {repr(s) for s in eval_scenes(400)}
    assert len(picked) == 96 and not picked & reported
    assert len({repr(s) for s in eval_scenes(96)} & reported) == 48  # seed 999: its seen half would


def test_renders_of_the_scenes_are_at_zero_distance_and_blanks_far_away():
    scenes = eval_scenes(64)
    real = [render(s) for s in scenes]
    ref = reference(scenes)
    same = distribution_scores(real, ref)
    assert abs(same["fd"]) < 1e-3 and same["precision"] == 1.0 and same["recall"] == 1.0
    blank = distribution_scores(np.full((64, 64, 64, 3), 255, np.uint8), ref)
    assert blank["fd"] > 1.0 and blank["precision"] == 0.0
    # other scenes of the same world: a small distance, far below the blanks'
    other = distribution_scores([render(s) for s in eval_scenes(64, seed=5)], ref)
    assert 0 < other["fd"] < blank["fd"] / 4


def test_table_rows_carry_the_distribution_columns():
    row = {
        "model": "m", "sampler": "s", "steps": 1, "ms_per_image": 12.5,
        **dict.fromkeys(("all", "seen", "held_out", "single", "two", "relation", "counting"), 0.5),
        "fd": 3.25, "precision": 0.75, "recall": 0.5,
    }  # fmt: skip
    table = format_rows([row])
    assert "| fd | precision | recall |" in table and "| 3.250 | 0.750 | 0.500 | 12.5 |" in table


def test_grid_prompts_keep_seen_and_held_out_apart():
    from sprint_desktop.distill.evaluate import GRID_PROMPTS

    def pairs(prompt: str) -> set[tuple[str, str]]:
        words = [w[:-1] if w in ("circles", "squares", "triangles") else w for w in prompt.split()]
        words = ["cross" if w == "crosses" else w for w in words]
        return set(zip(words, words[1:], strict=False))

    assert not any(pairs(p) & HELD_OUT for p in GRID_PROMPTS["seen"])
    assert all(pairs(p) & HELD_OUT for p in GRID_PROMPTS["held-out"])


def test_sample_grid_holds_one_tile_per_prompt(tiny_model_dir, tmp_path):
    from sprint_desktop.distill.evaluate import sample_grid

    assert_one_tile_per_grid_prompt(sample_grid(str(tiny_model_dir), tmp_path / "grid.png", steps=1, scale=1))

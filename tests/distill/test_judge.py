from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from sprint_desktop.distill import world as w
from sprint_desktop.distill.judge import compliance, detect, judge, parse_caption


@pytest.fixture(scope="module")
def renders():
    rng = np.random.default_rng(11)
    scenes = [w.sample_scene(rng, held_out=None) for _ in range(160)]
    return [w.render(s) for s in scenes], [s.caption for s in scenes]


def test_clean_renders_score_about_100(renders):
    images, captions = renders
    scores = compliance(images, captions)
    assert scores["all"] >= 0.99
    for family in w.FAMILIES:
        assert scores[family] >= 0.97
    assert scores["n"] == 160 and "held_out" in scores and "seen" in scores


def test_blank_images_score_zero(renders):
    _, captions = renders
    blank = [np.full((64, 64, 3), 255, np.uint8)] * len(captions)
    assert compliance(blank, captions)["all"] == 0.0


def test_mismatched_captions_score_near_zero(renders):
    images, captions = renders
    assert compliance(images, captions[1:] + captions[:1])["all"] <= 0.05


def test_blur_is_penalised(renders):
    images, captions = renders
    clean = compliance(images, captions)["all"]
    blurred = [np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(1.0))) for i in images]
    assert compliance(blurred, captions)["all"] < clean - 0.5


def test_noise_is_not_a_shape():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert not judge(noise, "a red circle")


def test_detects_colour_shape_size_and_position():
    objs = (w.Shape("green", "triangle", "large", 0.3, 0.7), w.Shape("purple", "cross", "small", 0.8, 0.2))
    found, junk = detect(w.render(objs))
    assert junk == 0
    got = sorted((d.color, d.shape, d.size, round(d.cx, 1), round(d.cy, 1)) for d in found)
    assert got == [("green", "triangle", "large", 0.3, 0.7), ("purple", "cross", "small", 0.8, 0.2)]


def test_relation_and_attribution_are_checked():
    img = w.render(
        (w.Shape("red", "circle", "small", 0.2, 0.5), w.Shape("blue", "square", "small", 0.8, 0.5))
    )
    assert judge(img, "a red circle left of a blue square")
    assert judge(img, "an small red circle left of a small blue square")  # "an" accepted
    assert not judge(img, "a red circle right of a blue square")
    assert not judge(img, "a blue circle left of a red square")  # colours swapped
    assert not judge(img, "a large red circle left of a blue square")  # wrong size
    assert not judge(img, "two red circles")


def test_parse_rejects_text_outside_the_grammar():
    for text in ("a red dog", "five red circles", "two red circle", "one red circles", ""):
        with pytest.raises(ValueError):
            parse_caption(text)
    assert parse_caption("one red circle").family == "counting"


def test_self_check_command_reports_the_judges_behaviour():
    from sprint_desktop.distill.judge import self_check

    scores = self_check(n=60, seed=3)
    assert scores["clean"] >= 0.97 and scores["blank"] == 0.0 and scores["mismatched captions"] <= 0.05
    assert scores["blur 1.0 px"] < scores["blur 0.7 px"] < scores["clean"]

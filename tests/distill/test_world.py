from __future__ import annotations

import numpy as np
import pytest

from sprint_desktop.distill import world as w
from sprint_desktop.distill.judge import parse_caption


def test_palette_and_held_out_pairs_follow_the_contract():
    assert len(w.PALETTE) == 8 and len(w.SHAPES) == 4 and len(w.HELD_OUT) == 8
    # Every colour and every shape still appears in some seen pair.
    seen = {(c, s) for c in w.COLORS for s in w.SHAPES} - w.HELD_OUT
    assert {c for c, _ in seen} == set(w.COLORS) and {s for _, s in seen} == set(w.SHAPES)


def test_scenes_are_seeded():
    a = [w.sample_scene(np.random.default_rng(3)) for _ in range(1)]
    b = [w.sample_scene(np.random.default_rng(3)) for _ in range(1)]
    assert a == b


def test_training_scenes_never_use_held_out_pairs():
    rng = np.random.default_rng(0)
    scenes = [w.sample_scene(rng, held_out=False, empty_p=0.1) for _ in range(1500)]
    assert not any(s.held_out for s in scenes)
    empty = sum(s.caption == "" for s in scenes) / len(scenes)
    assert 0.07 < empty < 0.13
    families = {s.family for s in scenes}
    assert families == {*w.FAMILIES, "empty"}


def test_evaluation_scenes_use_held_out_pairs():
    rng = np.random.default_rng(1)
    assert all(w.sample_scene(rng, held_out=True).held_out for _ in range(200))


def test_captions_parse_back_to_their_objects():
    rng = np.random.default_rng(2)
    for _ in range(400):
        scene = w.sample_scene(rng, held_out=None)
        claims = parse_caption(scene.caption)
        assert claims.family == scene.family
        assert sorted((o.color, o.shape) for o in claims.objects) == sorted(
            (o.color, o.shape) for o in scene.objects
        )


@pytest.mark.parametrize("family", w.FAMILIES)
def test_objects_fit_and_do_not_overlap(family):
    rng = np.random.default_rng(4)
    for _ in range(100):
        scene = w.sample_scene(rng, family=family)
        masks = [w.shape_mask(o, 256) for o in scene.objects]
        total = np.sum(masks, axis=0)
        assert total.max() <= 1
        for o in scene.objects:
            assert o.half <= o.cx <= 1 - o.half and o.half <= o.cy <= 1 - o.half
        if family == "relation":
            a, b = scene.objects
            relation = next(r for r in w.RELATIONS if f" {r} " in scene.caption)
            assert w.satisfies(a, relation, b, w.MIN_RELATION_GAP)


def test_render_is_antialiased_flat_colour_on_white():
    scene = w.Scene((w.Shape("red", "square", "large", 0.5, 0.5),), "a large red square", "single")
    img = w.render(scene)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == w.BACKGROUND and tuple(img[32, 32]) == w.PALETTE["red"]
    circle = w.render(w.Scene((w.Shape("blue", "circle", "large", 0.5, 0.5),), "", "single"))
    edge_values = {tuple(p) for p in circle.reshape(-1, 3)} - {w.BACKGROUND, w.PALETTE["blue"]}
    assert len(edge_values) > 3  # soft edges from supersampling


def test_sketch_is_dark_strokes_on_white_along_the_outline():
    rng = np.random.default_rng(0)
    scene = w.sample_scene(rng, family="single")
    sk = w.sketch(scene, rng)
    assert sk.shape == (64, 64, 3) and sk.dtype == np.uint8
    dark = sk[..., 0] < 128
    assert 0.01 < dark.mean() < 0.25
    obj = scene.objects[0]
    interior = w.shape_mask(w.Shape(obj.color, obj.shape, obj.size, obj.cx, obj.cy), 64)
    # Strokes trace the outline: little ink deep inside the shape or far outside it.
    assert (dark & interior).sum() < dark.sum()


@pytest.mark.parametrize("family", w.FAMILIES)
def test_an_extra_object_makes_a_picture_its_caption_no_longer_describes(family):
    """The students' discriminator is shown these as fakes: the judge must fail them while it
    passes the scene they came from."""
    from sprint_desktop.distill.judge import compliance

    rng = np.random.default_rng(3)
    scenes = [w.sample_scene(rng, family=family) for _ in range(12)]
    extras = [w.with_extra_object(s, rng) for s in scenes]
    pairs = [(s, e) for s, e in zip(scenes, extras, strict=True) if e is not None]
    assert len(pairs) >= 8
    for s, e in pairs:
        assert e.caption == s.caption and len(e.objects) == len(s.objects) + 1
        assert e.objects[:-1] == s.objects  # the scene as it was, and a copy of one of its objects
        assert (e.objects[-1].color, e.objects[-1].shape) in {(o.color, o.shape) for o in s.objects}
    captions = [s.caption for s, _ in pairs]
    assert compliance([w.render(s) for s, _ in pairs], captions)["all"] == 1.0
    assert compliance([w.render(e) for _, e in pairs], captions)["all"] == 0.0

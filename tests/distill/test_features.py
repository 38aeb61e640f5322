from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image, ImageFilter

from sprint_desktop.distill import features as fx
from sprint_desktop.distill import world as w


@pytest.fixture(scope="module")
def net():
    return fx.load_feature_net()


@pytest.fixture(scope="module")
def real_sets():
    def renders(seed, n=160):
        rng = np.random.default_rng(seed)
        return np.stack([w.render(w.sample_scene(rng, held_out=None)) for _ in range(n)])

    return renders(1), renders(2)


def test_weights_checksum_is_recorded():
    assert hashlib.sha256(fx.WEIGHTS.read_bytes()).hexdigest() == fx.WEIGHTS_SHA256


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    b = rng.standard_normal((4000, 3)) * 2 + 1
    # Two Gaussians: |mu|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)) = 3 + (3 + 12 - 2 * 6) = 6.
    assert fx.frechet_distance(a, b) == pytest.approx(6.0, rel=0.05)
    assert fx.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_distance_separates_real_from_blank_and_blur(net, real_sets):
    a, b = real_sets
    fa, fb = net.features(a), net.features(b)
    same = fx.frechet_distance(fa, fb)
    blurred = np.stack([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(1.5))) for i in b])
    blank = np.full_like(b, 255)
    assert fx.frechet_distance(fa, net.features(blurred)) > 2 * same
    assert fx.frechet_distance(fa, net.features(blank)) > 10 * same


def test_precision_recall_expose_mode_collapse(net, real_sets):
    a, b = real_sets
    fa, fb = net.features(a), net.features(b)
    p, r = fx.precision_recall(fa, fb)
    assert p > 0.7 and r > 0.7
    collapsed = net.features(np.repeat(b[:1], len(b), axis=0))
    p_c, r_c = fx.precision_recall(fa, collapsed)
    assert r_c < 0.2


def test_sketch_iou_high_for_the_scene_low_for_another():
    rng = np.random.default_rng(5)
    exact, filled, others = [], [], []
    for _ in range(40):
        scene = w.sample_scene(rng, held_out=None)
        other = w.sample_scene(rng, held_out=None)
        sk = w.sketch(scene, rng)
        exact.append(fx.sketch_iou(sk, w.render(scene), scene))
        filled.append(fx.sketch_iou(sk, w.render(scene)))
        others.append(fx.sketch_iou(sk, w.render(other), scene))
    assert np.median(exact) > 0.95 and min(exact) > 0.8  # a perfect image scores near 1 against its scene
    assert np.median(filled) > 0.6  # strokes alone (imported sketches) give a rougher region
    assert np.median(others) < 0.2

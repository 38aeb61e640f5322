from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sprint_desktop.core.errors import InvalidRequestError
from sprint_desktop.core.noise import draw_noise
from sprint_desktop.core.request import GenerateRequest


def test_request_is_frozen_and_comparable():
    a = GenerateRequest("a red circle", steps=1, seed=3)
    assert a == GenerateRequest("a red circle", steps=1, seed=3)
    assert a != GenerateRequest("a red circle", steps=2, seed=3)
    assert hash(a) == hash(GenerateRequest("a red circle", steps=1, seed=3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.steps = 3  # type: ignore[misc]


def test_control_image_compared_by_content():
    img = np.zeros((8, 8, 3), np.uint8)
    a = GenerateRequest("x", control_image=img)
    b = GenerateRequest("x", control_image=img.copy())
    img2 = img.copy()
    img2[0, 0] = 255
    assert a == b and a.control_digest == b.control_digest
    assert a != GenerateRequest("x", control_image=img2)
    assert not a.control_image.flags.writeable
    with pytest.raises(InvalidRequestError, match="control_image"):
        GenerateRequest("x", control_image=np.zeros((8, 8), np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "prompt is empty"),
        (dict(prompt="   \n"), "prompt is empty"),
        (dict(prompt="x" * 100_000), "prompt is too long: 100,000 characters"),
        (dict(steps=0), "steps must be 1-4, got 0"),
        (dict(steps=5), "steps must be 1-4, got 5"),
        (dict(steps=2.5), "steps must be 1-4"),
        (dict(guidance=float("nan")), "guidance must be a finite number"),
        (dict(guidance=float("inf")), "guidance must be a finite number"),
        (dict(guidance=-1.0), "guidance must be 0-50"),
        (dict(seed=-1), "seed must be"),
        (dict(width=0), "width must be"),
        (dict(height=10_000), "height must be"),
        (dict(batch_size=0), "batch_size must be 1-16"),
        (dict(timesteps=(1.5, 0.0)), "steps \\+ 1 = 3 values"),
        (dict(timesteps=(1.5, 1.6, 0.0)), "strictly decreasing"),
        (dict(control_scale=float("nan")), "control_scale"),
    ],
)
def test_validate_rejects_with_clear_message(kwargs, message):
    base = dict(prompt="a red circle")
    base.update(kwargs)
    with pytest.raises(InvalidRequestError, match=message):
        GenerateRequest(**base).validate()


def test_valid_request_passes_and_lists_seeds():
    r = GenerateRequest(
        "a red circle", steps=4, seed=10, batch_size=3, timesteps=[1.5, 1.0, 0.5, 0.2, 0]
    ).validate()
    assert r.seeds == [10, 11, 12]
    assert r.timesteps == (1.5, 1.0, 0.5, 0.2, 0.0)


def test_noise_is_seeded_and_independent_of_call_order():
    a = draw_noise(5, (4, 8, 8), 3)
    draw_noise(6, (4, 8, 8), 3)
    b = draw_noise(5, (4, 8, 8), 3)
    assert a.dtype == np.float32 and a.shape == (3, 4, 8, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, draw_noise(6, (4, 8, 8), 3))
    # Caching must not leak mutations between callers.
    a[:] = 0
    np.testing.assert_array_equal(b, draw_noise(5, (4, 8, 8), 3))
    assert abs(float(b.std()) - 1.0) < 0.1

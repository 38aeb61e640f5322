"""The TrigFlow transforms and the schedule against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sprint_desktop.core import trigflow as tf


@pytest.mark.parametrize("t", [0.0, 0.3, math.pi / 4, 1.0, 1.3, math.pi / 2])
def test_time_transform_closed_form(t):
    s = tf.flow_time_from_trig(t)
    assert s == pytest.approx(math.sin(t) / (math.cos(t) + math.sin(t)))
    assert tf.trig_time_from_flow(s) == pytest.approx(t, abs=1e-12)


def test_time_transform_endpoints_and_midpoint():
    assert tf.flow_time_from_trig(0.0) == 0.0
    assert tf.flow_time_from_trig(math.pi / 2) == pytest.approx(1.0)
    assert tf.flow_time_from_trig(math.pi / 4) == pytest.approx(0.5)


@pytest.mark.parametrize("t", [0.2, 0.7, 1.1, 1.5])
def test_flow_teacher_becomes_exact_trigflow(t):
    """With the ideal flow velocity v = z - x0 on the flow path, the transformed output F equals the
    TrigFlow target (cos t * z - sin t * x0) / sigma_d... in sigma_d units (paper Eq. 5)."""
    rng = np.random.default_rng(0)
    sd = tf.SIGMA_D
    x0 = rng.standard_normal((4, 3)) * sd  # data with std sigma_d
    z = rng.standard_normal((4, 3)) * sd  # TrigFlow noise has std sigma_d too
    x_t = math.cos(t) * x0 + math.sin(t) * z
    s = tf.flow_time_from_trig(t)
    x_flow = tf.flow_input_from_trig(x_t, t)
    # The flow path in unit-variance units: x_flow = (1 - s) x0/sd + s z/sd.
    np.testing.assert_allclose(x_flow, (1 - s) * x0 / sd + s * z / sd, atol=1e-12)
    v = z / sd - x0 / sd  # the ideal flow-matching velocity
    F = tf.trigflow_from_flow_velocity(x_flow, v, s)
    np.testing.assert_allclose(F, (math.cos(t) * z - math.sin(t) * x0) / sd, atol=1e-12)
    # ...and the consistency function then recovers x0 exactly.
    np.testing.assert_allclose(tf.x0_from_trigflow(x_t, F, t), x0, atol=1e-12)


def test_functions_accept_torch_tensors():
    t = torch.tensor([0.4, 1.2], dtype=torch.float64).view(-1, 1)
    x = torch.ones(2, 3, dtype=torch.float64)
    out = tf.x0_from_trigflow(x, x, t)
    expected = torch.cos(t) * x - torch.sin(t) * 0.5 * x
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(tf.renoise(x, x, t), torch.cos(t) * x + torch.sin(t) * 0.5 * x)


def test_schedule_one_to_four_steps():
    assert tf.trigflow_timesteps(1) == [1.5708, 0.0]
    assert tf.trigflow_timesteps(2) == [1.5708, 1.3, 0.0]
    assert tf.trigflow_timesteps(2, intermediate_t=None) == pytest.approx([1.5708, 0.7854, 0.0])
    assert tf.trigflow_timesteps(3) == pytest.approx([1.5708, 1.0472, 0.5236, 0.0])
    assert tf.trigflow_timesteps(4) == pytest.approx([1.5708, 1.1781, 0.7854, 0.3927, 0.0])


def test_schedule_matches_diffusers_scm_scheduler():
    from diffusers import SCMScheduler

    sched = SCMScheduler()
    for steps in (1, 2, 3, 4):
        sched.set_timesteps(steps, intermediate_timesteps=1.3 if steps == 2 else None)
        np.testing.assert_allclose(tf.trigflow_timesteps(steps), sched.timesteps.numpy(), atol=1e-6)


@pytest.mark.parametrize("steps", [0, 5, -1, 2.0, True])
def test_schedule_rejects_bad_steps(steps):
    with pytest.raises(ValueError, match="steps must be"):
        tf.trigflow_timesteps(steps)


@pytest.mark.parametrize(
    "ts, message",
    [
        ([1.5], "2 to 5"),
        ([1.5, 1.0, 0.5, 0.3, 0.1, 0.0], "2 to 5"),
        ([1.5, 0.5], "end at 0"),
        ([1.0, 1.2, 0.0], "strictly decreasing"),
        ([2.0, 0.0], "pi/2"),
        ([float("nan"), 0.0], "finite"),
    ],
)
def test_check_timesteps_rejects(ts, message):
    with pytest.raises(ValueError, match=message):
        tf.check_timesteps(ts)


SKETCH = np.full((16, 16, 3), 255, np.uint8)


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_plan_without_a_sketch_is_the_step_adaptive_schedule(steps):
    from sprint_desktop.core.request import GenerateRequest

    for has_controlnet in (False, True):
        p = tf.plan(GenerateRequest("x", steps=steps), has_controlnet)
        assert p.times == tuple(tf.trigflow_timesteps(steps)) and not p.from_sketch and not p.controlnet
    assert tf.plan(GenerateRequest("x", steps=2), False).times == (tf.T_MAX, 1.3, 0.0)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_plan_with_a_sketch_uses_the_controlnet_or_starts_from_the_sketch(steps):
    from sprint_desktop.core.request import GenerateRequest

    request = GenerateRequest("x", steps=steps, control_image=SKETCH, strength=0.6)
    with_cn = tf.plan(request, has_controlnet=True)
    assert with_cn.controlnet and not with_cn.from_sketch
    assert with_cn.times == tuple(tf.trigflow_timesteps(steps))
    without = tf.plan(request, has_controlnet=False)
    assert without.from_sketch and not without.controlnet
    assert without.times[0] == pytest.approx(0.6 * tf.T_MAX) and without.times[-1] == 0.0
    assert np.allclose(np.diff(without.times), -0.6 * tf.T_MAX / steps)  # evenly spaced, even for 2 steps


def test_plan_takes_custom_timesteps_in_every_case():
    from sprint_desktop.core.request import GenerateRequest

    custom = (1.2, 0.5, 0.0)
    for image in (None, SKETCH):
        for has_controlnet in (False, True):
            request = GenerateRequest("x", steps=2, timesteps=custom, control_image=image)
            assert tf.plan(request, has_controlnet).times == custom

"""TrigFlow math of SANA-Sprint (Chen et al. 2025, arXiv 2503.09641, Sec. 3.1) as pure functions.

Names follow the paper: TrigFlow time ``t`` in [0, pi/2], flow-matching time ``s`` in [0, 1],
``sigma_d`` the data standard deviation, ``F`` the TrigFlow network output, ``v`` the flow velocity.

    x_t = cos(t) x0 + sin(t) z                       (TrigFlow forward process, z ~ N(0, sigma_d^2))
    s   = sin(t) / (cos(t) + sin(t))                 (Eq. 4: time transform)
    x_flow = (x_t / sigma_d) * sqrt(s^2 + (1-s)^2)   (Eq. 4: input transform)
    F   = ((1-2s) x_flow + (1-2s+2s^2) v) / sqrt(s^2 + (1-s)^2)   (Eq. 5: output transform)
    x0  = cos(t) x_t - sin(t) sigma_d F              (consistency function f(x_t, t))

Each function accepts Python floats, numpy arrays or torch tensors (times may be tensors that
broadcast against the sample), so the PyTorch and ONNX Runtime backends and the distillation code
share one implementation. `plan` chooses the schedule of a request, for every backend. This module
imports neither torch nor Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

SIGMA_D = 0.5
"""Data standard deviation of SANA-Sprint (``sigma_data`` of diffusers' SCMScheduler)."""

T_MAX = 1.57080
"""Starting TrigFlow time. The published pipeline uses 1.57080 (pi/2 rounded); we match it exactly."""

DEFAULT_INTERMEDIATE_T = 1.3
"""The paper's intermediate time for two-step sampling."""

MIN_STEPS, MAX_STEPS = 1, 4


def _sin(x: Any) -> Any:
    if isinstance(x, (int, float)):
        return math.sin(x)
    return x.sin() if hasattr(x, "sin") else np.sin(x)


def _cos(x: Any) -> Any:
    if isinstance(x, (int, float)):
        return math.cos(x)
    return x.cos() if hasattr(x, "cos") else np.cos(x)


def _sqrt(x: Any) -> Any:
    if isinstance(x, (int, float)):
        return math.sqrt(x)
    return x.sqrt() if hasattr(x, "sqrt") else np.sqrt(x)


def _atan2(y: Any, x: Any) -> Any:
    if isinstance(y, (int, float)) and isinstance(x, (int, float)):
        return math.atan2(y, x)
    if hasattr(y, "atan2"):
        return y.atan2(x)
    return np.arctan2(y, x)


def flow_time_from_trig(t: Any) -> Any:
    """``s = sin t / (cos t + sin t)``: TrigFlow time -> flow-matching time (paper Eq. 4)."""
    return _sin(t) / (_cos(t) + _sin(t))


def trig_time_from_flow(s: Any) -> Any:
    """Inverse of `flow_time_from_trig`: ``t = atan2(s, 1 - s)``."""
    return _atan2(s, 1 - s)


def flow_input_scale(s: Any) -> Any:
    """``sqrt(s^2 + (1-s)^2)``: the norm that maps TrigFlow inputs onto the flow path."""
    return _sqrt(s * s + (1 - s) * (1 - s))


def flow_input_from_trig(x_t: Any, t: Any, sigma_d: float = SIGMA_D) -> Any:
    """Teacher input ``x_flow = (x_t / sigma_d) * sqrt(s^2 + (1-s)^2)`` with ``s = s(t)`` (Eq. 4)."""
    s = flow_time_from_trig(t)
    return (x_t / sigma_d) * flow_input_scale(s)


def trigflow_from_flow_velocity(x_flow: Any, v: Any, s: Any) -> Any:
    """TrigFlow output ``F`` from the flow velocity ``v`` predicted at ``x_flow`` and time ``s`` (Eq. 5)."""
    return ((1 - 2 * s) * x_flow + (1 - 2 * s + 2 * s * s) * v) / flow_input_scale(s)


def x0_from_trigflow(x_t: Any, F: Any, t: Any, sigma_d: float = SIGMA_D) -> Any:
    """Consistency function ``f(x_t, t) = cos(t) x_t - sin(t) sigma_d F``."""
    return _cos(t) * x_t - _sin(t) * sigma_d * F


def renoise(x0: Any, z: Any, t: Any, sigma_d: float = SIGMA_D) -> Any:
    """Forward TrigFlow process ``x_t = cos(t) x0 + sin(t) sigma_d z`` for unit-variance noise ``z``."""
    return _cos(t) * x0 + _sin(t) * sigma_d * z


def trigflow_timesteps(
    steps: int, intermediate_t: float | None = DEFAULT_INTERMEDIATE_T, t_max: float = T_MAX
) -> list[float]:
    """The step-adaptive schedule: ``steps + 1`` TrigFlow times from ``t_max`` down to 0.

    Two steps use ``[t_max, intermediate_t, 0]`` (paper: 1.3); other counts, or
    ``intermediate_t=None``, are evenly spaced.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or not MIN_STEPS <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer from {MIN_STEPS} to {MAX_STEPS}, got {steps!r}")
    if steps == 2 and intermediate_t is not None:
        return [float(t_max), float(intermediate_t), 0.0]
    return [float(t_max) * (1 - i / steps) for i in range(steps + 1)]


def check_timesteps(timesteps: Sequence[float]) -> tuple[float, ...]:
    """Validate custom TrigFlow times: 2-5 finite values, strictly decreasing, in (0, pi/2], ending at 0."""
    ts = tuple(float(t) for t in timesteps)
    if not MIN_STEPS + 1 <= len(ts) <= MAX_STEPS + 1:
        raise ValueError(
            f"timesteps must hold 2 to 5 values (steps + 1, ending at 0), got {len(ts)}: {list(ts)}"
        )
    if not all(math.isfinite(t) for t in ts):
        raise ValueError(f"timesteps must be finite numbers, got {list(ts)}")
    if ts[-1] != 0.0:
        raise ValueError(f"timesteps must end at 0, got {list(ts)}")
    if ts[0] > math.pi / 2 + 1e-4 or ts[0] <= 0:
        raise ValueError(f"the first timestep must be in (0, pi/2], got {ts[0]}")
    if any(a <= b for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"timesteps must be strictly decreasing, got {list(ts)}")
    return ts


class ScheduledRequest(Protocol):
    """What `plan` reads of a request (`core.request.GenerateRequest` has it)."""

    @property
    def steps(self) -> int: ...

    @property
    def timesteps(self) -> Sequence[float] | None: ...

    @property
    def strength(self) -> float: ...

    @property
    def control_image(self) -> Any: ...


@dataclass(frozen=True)
class Plan:
    """How one request is sampled, the same on every backend."""

    times: tuple[float, ...]
    """``steps + 1`` TrigFlow times, from the start down to 0."""
    from_sketch: bool
    """Start from the sketch's latent re-noised to ``times[0]`` (image-to-image, no ControlNet)
    rather than from noise alone (``x = sigma_d z`` at ``times[0]``)."""
    controlnet: bool
    """The sketch conditions every step through the ControlNet."""


def plan(request: ScheduledRequest, has_controlnet: bool) -> Plan:
    """The schedule of ``request`` on a model with or without a ControlNet:

    - no sketch: the step-adaptive schedule from ``T_MAX`` (two steps pass the paper's 1.3);
    - a sketch and a ControlNet: the same schedule, the ControlNet follows the sketch;
    - a sketch and no ControlNet: image-to-image, evenly spaced from ``strength * T_MAX``.

    Custom ``request.timesteps`` replace the schedule in every case.
    """
    sketch = request.control_image is not None
    from_sketch = sketch and not has_controlnet
    if request.timesteps:
        times = [float(t) for t in request.timesteps]
    elif from_sketch:
        times = trigflow_timesteps(request.steps, None, t_max=float(request.strength) * T_MAX)
    else:
        times = trigflow_timesteps(request.steps, DEFAULT_INTERMEDIATE_T)
    return Plan(times=tuple(times), from_sketch=from_sketch, controlnet=sketch and has_controlnet)

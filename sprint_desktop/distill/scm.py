"""Continuous-time consistency distillation (sCM, Lu & Song 2024) on the TrigFlow form of a
flow-matching SANA model (SANA-Sprint, Chen et al. 2025, Sec. 3.1-3.2), as small pure pieces.

Notation (TrigFlow): x_t = cos(t) x0 + sin(t) z, z ~ N(0, sigma_d^2); the model's TrigFlow output
is F(x_t / sigma_d, t); the consistency function is f(x_t, t) = cos(t) x_t - sin(t) sigma_d F.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..core.trigflow import (
    SIGMA_D,
    flow_input_scale,
    flow_time_from_trig,
    renoise,
    trigflow_from_flow_velocity,
    x0_from_trigflow,
)
from .sampling import velocity

GUIDANCE_CHOICES = (4.0, 4.5, 5.0)
GUIDANCE_EMBED_SCALE = 0.1


def time_proposal(
    n: int, p_mean: float, p_std: float, generator: torch.Generator | None = None, sigma_d: float = SIGMA_D
) -> torch.Tensor:
    """TrigFlow times with ``tan t = exp(tau) / sigma_d``, ``tau ~ N(p_mean, p_std)`` (sCM Sec. 4)."""
    tau = torch.randn(n, generator=generator) * p_std + p_mean
    return torch.atan(torch.exp(tau) / sigma_d)


def with_largest_time(t: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each time by the largest one, pi/2 (pure noise), with probability ``p`` (SANA-Sprint
    trains the one-step generator there too)."""
    largest = torch.rand(t.shape[0], generator=generator).to(t.device) < p
    return torch.where(largest, torch.full_like(t, math.pi / 2), t)


def noisy(x0: torch.Tensor, t: torch.Tensor, sigma_d: float = SIGMA_D) -> torch.Tensor:
    """x_t = cos t x0 + sin t z with fresh z ~ N(0, sigma_d^2), for per-sample times ``t`` (B,)."""
    return renoise(x0, torch.randn_like(x0), t.view(-1, 1, 1, 1), sigma_d)


def consistency_x0(
    model: Any,
    x_t: torch.Tensor,
    t: torch.Tensor,
    embeds: Any,
    mask: Any,
    guidance: Any,
    sigma_d: float = SIGMA_D,
) -> torch.Tensor:
    """f(x_t, t) = cos t x_t - sin t sigma_d F(x_t / sigma_d, t): the one-step clean latent."""
    F = trigflow_output(model, x_t / sigma_d, t, embeds, mask, guidance)
    return x0_from_trigflow(x_t, F, t.view(-1, 1, 1, 1), sigma_d)


def trigflow_output(
    transformer: Any,
    x_over_sigma: torch.Tensor,
    t: torch.Tensor,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    guidance: torch.Tensor,
) -> torch.Tensor:
    """F(x_t / sigma_d, t) of a flow-trained SANA transformer through the training-free transform
    (paper Eq. 4-5): flow time s(t), input rescaled onto the flow path, velocity mapped to F."""
    s = flow_time_from_trig(t)
    s4 = s.view(-1, 1, 1, 1)
    x_flow = x_over_sigma * flow_input_scale(s4)
    v = velocity(transformer, x_flow, s, embeds, mask, guidance)
    return trigflow_from_flow_velocity(x_flow, v, s4)


def teacher_dxdt(
    teacher: Any,
    x_t: torch.Tensor,
    t: torch.Tensor,
    cond: tuple[torch.Tensor, torch.Tensor],
    uncond: tuple[torch.Tensor, torch.Tensor],
    w: torch.Tensor,
    sigma_d: float = SIGMA_D,
) -> torch.Tensor:
    """The teacher's PF-ODE direction dx_t/dt = sigma_d * F_cfg, with classifier-free guidance ``w`` (B,)."""
    zero = torch.zeros_like(t)
    with torch.no_grad():
        f_c = trigflow_output(teacher, x_t / sigma_d, t, *cond, zero)
        f_u = trigflow_output(teacher, x_t / sigma_d, t, *uncond, zero)
    w4 = w.view(-1, 1, 1, 1)
    return sigma_d * (f_u + w4 * (f_c - f_u))


def student_jvp(
    student: Any,
    x_t: torch.Tensor,
    t: torch.Tensor,
    dxdt: torch.Tensor,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    guidance: torch.Tensor,
    sigma_d: float = SIGMA_D,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_theta^-, cos t sin t dF_theta^-/dt) by one forward-mode JVP, without gradients.

    Tangents (cos t sin t dx_t/dt / sigma_d, cos t sin t) give the total time derivative scaled by
    cos t sin t (sCM Alg. 1). Cross-attention runs on the math SDPA kernel: PyTorch's fused CPU and
    flash kernels do not support forward-mode AD.
    """
    cs = (torch.cos(t) * torch.sin(t)).view(-1, 1, 1, 1)

    def f(x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        return trigflow_output(student, x, tt, embeds, mask, guidance)

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        F_minus, dF = torch.func.jvp(f, (x_t / sigma_d, t), (cs * dxdt / sigma_d, cs.view(-1)))  # type: ignore[misc]
    return F_minus, dF


def scm_tangent(
    F_minus: torch.Tensor,
    dF_scaled: torch.Tensor,
    dxdt: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    r: float,
    sigma_d: float = SIGMA_D,
) -> torch.Tensor:
    """g = -cos^2 t (sigma_d F^- - dx_t/dt) - r (cos t sin t x_t + sigma_d cos t sin t dF^-/dt)  (sCM Eq. 8
    times cos t; ``r`` is the tangent warm-up factor)."""
    c = torch.cos(t).view(-1, 1, 1, 1)
    s = torch.sin(t).view(-1, 1, 1, 1)
    return -(c * c) * (sigma_d * F_minus - dxdt) - r * (c * s * x_t + sigma_d * dF_scaled)


def normalize_tangent(g: torch.Tensor, c: float = 0.1) -> torch.Tensor:
    """g / (||g|| + c) per sample (sCM's tangent normalisation)."""
    norm = g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return g / (norm + c)


def warmup_ratio(step: int, warmup: int) -> float:
    """Tangent warm-up r = min(1, step / warmup)."""
    return 1.0 if warmup <= 0 else min(1.0, step / warmup)


def scm_loss(
    F_theta: torch.Tensor, F_minus: torch.Tensor, g: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """Adaptive-weighted sCM loss: mean_b [exp(-logvar_b) * mean((F_theta - F^- - g)^2) + logvar_b]."""
    per_sample = ((F_theta.float() - F_minus.float() - g.float()) ** 2).flatten(1).mean(dim=1)
    return (torch.exp(-logvar) * per_sample + logvar).mean()


class LogVarHead(nn.Module):
    """The learned log-variance w_phi(t) of sCM's adaptive weighting: Fourier features of t -> MLP."""

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.freqs: torch.Tensor
        self.register_buffer("freqs", torch.randn(features // 2) * 2.0)
        self.linear = nn.Linear(features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * t[:, None] * self.freqs[None]
        return self.linear(torch.cat([angle.cos(), angle.sin()], dim=1)).squeeze(1)


def sample_guidance(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Teacher guidance w drawn from {4, 4.5, 5} per sample; the student sees w * 0.1."""
    idx = torch.randint(len(GUIDANCE_CHOICES), (n,), generator=generator)
    return torch.tensor(GUIDANCE_CHOICES)[idx]

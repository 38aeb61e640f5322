"""Latent adversarial diffusion distillation (LADD, Sauer et al. 2024) as used by SANA-Sprint:
discriminator heads on a frozen teacher's intermediate features, hinge losses."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .scm import trigflow_output


class DiscriminatorHead(nn.Module):
    """Spectral-norm 1-D convolutions over the token sequence of one teacher block (StyleGAN-T style),
    projected onto the pooled caption embedding for conditioning."""

    def __init__(self, channels: int, cond_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            spectral_norm(nn.Conv1d(channels, hidden, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv1d(hidden, hidden, 3, padding=1)),
            nn.LeakyReLU(0.2),
        )
        self.out = spectral_norm(nn.Conv1d(hidden, 1, 1))
        self.cond = nn.Linear(cond_dim, hidden)

    def forward(
        self, tokens: torch.Tensor, cond: torch.Tensor, embeds: Any = None, mask: Any = None
    ) -> torch.Tensor:
        """tokens (B, N, C), cond (B, D) -> logits (B,). The caption's tokens (``embeds``, ``mask``:
        every head's signature) are not used: this head sees only the pooled caption."""
        h = self.body(tokens.float().transpose(1, 2))  # (B, hidden, N)
        uncond = self.out(h).mean(dim=(1, 2))
        projection = (h.mean(dim=2) * self.cond(cond.float())).sum(dim=1) / h.shape[1] ** 0.5
        return uncond + projection


class SetHead(nn.Module):
    """A head that sees the whole token set before it scores it.

    ``DiscriminatorHead`` averages per-token logits, so its score is a sum over image regions: with
    isolated objects it is ``a + b * count`` and cannot prefer exactly the one object a caption asks
    for over two (session 6's hybrid drew every object two or three times). Here a learned summary
    token, offset by the caption, attends over the image tokens and the caption's tokens in one
    pre-norm transformer layer, and the logit is read from it after the layer's MLP: a nonlinearity
    after pooling, which can score a count non-monotonically. The output is, as in the convolutional
    head, an unconditional term plus a projection onto the pooled caption (Miyato & Koyama 2018)."""

    max_tokens = 1024

    def __init__(self, channels: int, cond_dim: int, hidden: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.image = spectral_norm(nn.Linear(channels, hidden))
        self.text = nn.Linear(cond_dim, hidden)
        self.position = nn.Parameter(torch.zeros(1, self.max_tokens, hidden))
        self.summary = nn.Parameter(torch.zeros(1, 1, hidden))
        self.mix = nn.TransformerEncoderLayer(
            hidden, heads, 2 * hidden, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.out = nn.Linear(hidden, 1)
        self.cond = nn.Linear(cond_dim, hidden)

    def forward(
        self, tokens: torch.Tensor, cond: torch.Tensor, embeds: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """tokens (B, N, C), pooled caption cond (B, D), caption embeds (B, L, D), mask (B, L) -> (B,)."""
        b, n, _ = tokens.shape
        if n > self.max_tokens:
            raise ValueError(f"the set head takes at most {self.max_tokens} tokens, got {n}")
        image = nn.functional.leaky_relu(self.image(tokens.float()), 0.2) + self.position[:, :n]
        summary = self.summary.expand(b, -1, -1) + self.text(cond.float())[:, None]
        seq = torch.cat([summary, image, self.text(embeds.float())], dim=1)
        ignore = torch.cat([torch.zeros(b, 1 + n, dtype=torch.bool, device=mask.device), mask == 0], dim=1)
        z = self.mix(seq, src_key_padding_mask=ignore)[:, 0]
        return self.out(z).squeeze(-1) + (z * self.cond(cond.float())).sum(dim=1) / z.shape[1] ** 0.5


HeadName = Literal["conv", "set"]
HEADS: dict[str, type[DiscriminatorHead | SetHead]] = {"conv": DiscriminatorHead, "set": SetHead}


class Discriminator(nn.Module):
    """Heads (``head``, a key of ``HEADS``) on blocks ``layers`` of the frozen teacher; the teacher
    itself is not a submodule."""

    def __init__(self, width: int, cond_dim: int, layers: tuple[int, ...], head: str = "conv") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown discriminator head {head!r}: choose one of {', '.join(HEADS)}")
        self.layers = layers
        self.heads = nn.ModuleList(HEADS[head](width, cond_dim) for _ in layers)

    def forward(
        self,
        teacher: Any,
        x_t: torch.Tensor,
        t: torch.Tensor,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        sigma_d: float,
    ) -> torch.Tensor:
        """Summed head logits (B,) for noisy latents ``x_t`` at TrigFlow times ``t``."""
        features = teacher_features(teacher, x_t, t, embeds, mask, self.layers, sigma_d)
        cond = pooled(embeds, mask)
        return sum(head(f, cond, embeds, mask) for head, f in zip(self.heads, features, strict=True))  # type: ignore[return-value]


def pooled(embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(embeds.dtype).unsqueeze(-1)
    return (embeds * m).sum(1) / m.sum(1).clamp(min=1)


def teacher_features(
    teacher: Any,
    x_t: torch.Tensor,
    t: torch.Tensor,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    layers: tuple[int, ...],
    sigma_d: float,
) -> list[torch.Tensor]:
    """Outputs (B, N, C) of the teacher's blocks ``layers`` for ``x_t``; gradients flow to ``x_t``."""
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        teacher.transformer_blocks[i].register_forward_hook(
            lambda mod, args, out, i=i: captured.__setitem__(
                i, out.flatten(2).transpose(1, 2) if out.ndim == 4 else out
            )
        )
        for i in layers
    ]
    try:
        trigflow_output(teacher, x_t / sigma_d, t, embeds, mask, torch.zeros_like(t))
    finally:
        for h in hooks:
            h.remove()
    return [captured[i] for i in layers]


def d_hinge_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""
    return torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()


def g_hinge_loss(fake: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: -mean(D(fake))."""
    return -fake.mean()


def balanced_weight(
    distill_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor, cap: float = 1e4
) -> torch.Tensor:
    """``||grad L_distill|| / ||grad L_adv||`` on the generator's last layer (Esser et al. 2021,
    "Taming Transformers", Eq. 7), detached and capped: multiplied into the LADD weight, it makes the
    adversarial gradient the stated fraction of the distillation one whatever the discriminator's
    scale, which a hinge generator loss ``-D(fake)`` does not bound."""
    g_distill = torch.autograd.grad(distill_loss, last_layer, retain_graph=True)[0].norm()
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0].norm()
    return (g_distill / (g_adv + 1e-8)).clamp(max=cap).detach()


def adversarial_weight(step: int, weight: float, warmup: int) -> float:
    """The hybrid loss's LADD weight at ``step`` (1-based): ``weight * min(1, step / warmup)``.

    SANA-Sprint trains L = L_sCM + lambda * L_adv with a fixed lambda = 0.5. Ramping lambda up from 0
    over ``warmup`` steps (0: no ramp, the paper's) lets sCM first make the student follow the teacher
    before the discriminator, itself untrained at the start, pulls on it (issue #14's recipe)."""
    return weight if warmup <= 0 else weight * min(1.0, step / warmup)

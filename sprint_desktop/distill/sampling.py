"""The teacher's sampling pieces, shared by its training, its evaluation and the students: the
captions' embeddings as the engine computes them, the flow velocity, and flow-matching Euler
sampling with classifier-free guidance (x_{s'} = x_s + (s' - s) v_cfg, v_cfg = v_u + w (v_c - v_u),
from s = 1 to 0; Ho & Salimans 2022 for the guidance, Lipman et al. 2023 for the flow)."""

from __future__ import annotations

from typing import Any

import torch

from .components import MAX_CAPTION_TOKENS


def encode_text(
    tokenizer: Any, text_encoder: Any, captions: list[str], device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states (B, L, D) and mask (B, L) for captions, as the engine computes them
    (lower-case, <bos> first, right padding to MAX_CAPTION_TOKENS, no instruction prefix)."""
    tokens = tokenizer(
        [c.lower().strip() for c in captions],
        padding="max_length",
        max_length=MAX_CAPTION_TOKENS,
        truncation=True,
        return_tensors="pt",
    )
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    return text_encoder(ids, attention_mask=mask)[0], mask


def velocity(
    transformer: Any,
    x: torch.Tensor,
    s: torch.Tensor,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    guidance: torch.Tensor | None = None,
) -> torch.Tensor:
    """The flow velocity at flow time ``s`` (B,); the guidance input 0 unless given (the teacher
    has none; a student is told its guidance scale)."""
    if guidance is None:
        guidance = torch.zeros_like(s)
    return transformer(
        x,
        encoder_hidden_states=embeds,
        encoder_attention_mask=mask,
        guidance=guidance,
        timestep=s,
        return_dict=False,
    )[0]


@torch.no_grad()
def euler_sample(
    transformer: Any,
    tokenizer: Any,
    text_encoder: Any,
    captions: list[str],
    steps: int,
    guidance: float | torch.Tensor,
    seed: int,
    shape: tuple[int, int, int] = (32, 8, 8),
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flow-matching Euler sampling from s=1 to 0 with classifier-free guidance (one scale, or one
    per caption (B,)); returns x0 (B, C, h, w). The starting noise is drawn from ``seed`` unless given."""
    device = next(transformer.parameters()).device
    embeds, mask = encode_text(tokenizer, text_encoder, captions, device)
    null, null_mask = encode_text(tokenizer, text_encoder, [""] * len(captions), device)
    if noise is None:
        noise = torch.randn((len(captions), *shape), generator=torch.Generator().manual_seed(seed))
    x = noise.to(device)
    w = guidance.to(device).view(-1, 1, 1, 1) if isinstance(guidance, torch.Tensor) else guidance
    times = torch.linspace(1.0, 0.0, steps + 1)
    for s, s_next in zip(times[:-1], times[1:], strict=True):
        sb = torch.full((len(captions),), float(s), device=device)
        v_c = velocity(transformer, x, sb, embeds, mask)
        v_u = velocity(transformer, x, sb, null, null_mask)
        v = v_u + w * (v_c - v_u)
        x = x + (float(s_next) - float(s)) * v
    return x

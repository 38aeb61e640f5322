"""A ControlNet for SANA-Sprint: the Sprint transformer's own input path (QK-norm blocks, guidance
embedding, dense time) for the first K blocks, a zero-initialised projection of the control latent
into its input, and zero-initialised output projections whose results are added after the base
model's blocks 1..K.

Why our own class: diffusers' `SanaControlNetModel` has neither QK-norm nor a guidance embedding,
so it cannot be initialised from, or condition, a Sprint transformer (its pipeline crashes with one).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import PatchEmbed, PixArtAlphaTextProjection
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNormSingle, RMSNorm
from diffusers.models.transformers.sana_transformer import (
    SanaCombinedTimestepGuidanceEmbeddings,
    SanaTransformerBlock,
)
from torch import nn


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class SprintControlNetModel(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """Residuals ``(B, N, D)`` for the first ``num_layers`` blocks of a `SanaTransformer2DModel`."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 32,
        num_attention_heads: int = 70,
        attention_head_dim: int = 32,
        num_layers: int = 7,
        num_cross_attention_heads: int | None = 20,
        cross_attention_head_dim: int | None = 112,
        cross_attention_dim: int | None = 2240,
        caption_channels: int = 2304,
        mlp_ratio: float = 2.5,
        dropout: float = 0.0,
        attention_bias: bool = False,
        sample_size: int = 32,
        patch_size: int = 1,
        norm_elementwise_affine: bool = False,
        norm_eps: float = 1e-6,
        interpolation_scale: float | None = None,
        guidance_embeds: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
    ) -> None:
        super().__init__()
        inner = num_attention_heads * attention_head_dim
        self.patch_embed = PatchEmbed(
            height=sample_size,
            width=sample_size,
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dim=inner,
            interpolation_scale=interpolation_scale,
            pos_embed_type="sincos" if interpolation_scale is not None else None,
        )
        self.time_embed: nn.Module = (
            SanaCombinedTimestepGuidanceEmbeddings(inner) if guidance_embeds else AdaLayerNormSingle(inner)
        )
        self.caption_projection = PixArtAlphaTextProjection(in_features=caption_channels, hidden_size=inner)
        self.caption_norm = RMSNorm(inner, eps=1e-5, elementwise_affine=True)
        self.transformer_blocks = nn.ModuleList(
            SanaTransformerBlock(
                inner,
                num_attention_heads,
                attention_head_dim,
                dropout=dropout,
                num_cross_attention_heads=num_cross_attention_heads,
                cross_attention_head_dim=cross_attention_head_dim,
                cross_attention_dim=cross_attention_dim,
                attention_bias=attention_bias,
                norm_elementwise_affine=norm_elementwise_affine,
                norm_eps=norm_eps,
                mlp_ratio=mlp_ratio,
                qk_norm=qk_norm,
            )
            for _ in range(num_layers)
        )
        self.cond_embed = PatchEmbed(
            height=sample_size,
            width=sample_size,
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dim=inner,
            pos_embed_type=None,
        )
        self.input_block = _zero(nn.Linear(inner, inner))
        self.controlnet_blocks = nn.ModuleList(_zero(nn.Linear(inner, inner)) for _ in range(num_layers))

    @classmethod
    def from_transformer(cls, transformer: Any, num_layers: int) -> SprintControlNetModel:
        """Initialise from the first ``num_layers`` blocks (and the input path) of a Sprint transformer."""
        cfg = transformer.config
        if num_layers < 1 or num_layers > cfg.num_layers:
            raise ValueError(f"num_layers must be 1-{cfg.num_layers}, got {num_layers}")
        model = cls(
            in_channels=cfg.in_channels,
            num_attention_heads=cfg.num_attention_heads,
            attention_head_dim=cfg.attention_head_dim,
            num_layers=num_layers,
            num_cross_attention_heads=cfg.num_cross_attention_heads,
            cross_attention_head_dim=cfg.cross_attention_head_dim,
            cross_attention_dim=cfg.cross_attention_dim,
            caption_channels=cfg.caption_channels,
            mlp_ratio=cfg.mlp_ratio,
            dropout=cfg.dropout,
            attention_bias=cfg.attention_bias,
            sample_size=cfg.sample_size,
            patch_size=cfg.patch_size,
            norm_elementwise_affine=cfg.norm_elementwise_affine,
            norm_eps=cfg.norm_eps,
            interpolation_scale=cfg.interpolation_scale,
            guidance_embeds=cfg.guidance_embeds,
            qk_norm=cfg.qk_norm,
        )
        for name in ("patch_embed", "time_embed", "caption_projection", "caption_norm"):
            getattr(model, name).load_state_dict(getattr(transformer, name).state_dict())
        model.cond_embed.proj.load_state_dict(transformer.patch_embed.proj.state_dict())
        for mine, theirs in zip(model.transformer_blocks, transformer.transformer_blocks, strict=False):
            mine.load_state_dict(copy.deepcopy(theirs.state_dict()))
        return model if transformer.dtype == torch.float32 else model.to(transformer.dtype)

    def embed_condition(self, controlnet_cond: torch.Tensor) -> torch.Tensor:
        """The control latent's contribution to the first block's input, ``(B, h*w, D)``: the same
        for every step and every request with that sketch, so callers compute it once per sketch
        and pass it to `forward` as ``cond_embedding``."""
        weight = self.cond_embed.proj.weight
        return self.input_block(self.cond_embed(controlnet_cond.to(weight.dtype)))

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        controlnet_cond: torch.Tensor | None = None,
        guidance: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        conditioning_scale: float = 1.0,
        cond_embedding: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """hidden_states (B, C, h, w) as fed to the transformer; controlnet_cond (B, C, h, w) the
        control latent, or ``cond_embedding`` its `embed_condition` computed beforehand. Returns one
        residual (B, h*w, D) per block, scaled by ``conditioning_scale``."""
        if encoder_attention_mask is not None and encoder_attention_mask.ndim == 2:
            encoder_attention_mask = (1 - encoder_attention_mask.to(hidden_states.dtype)) * -10000.0
            encoder_attention_mask = encoder_attention_mask.unsqueeze(1)
        batch, _, height, width = hidden_states.shape
        p = int(self.config.get("patch_size", 1))
        h = self.patch_embed(hidden_states)
        if cond_embedding is None:
            if controlnet_cond is None:
                raise ValueError("pass controlnet_cond or its cond_embedding")
            cond_embedding = self.embed_condition(controlnet_cond)
        h = h + cond_embedding.to(h.dtype)
        if self.config.get("guidance_embeds", True):
            if guidance is None:
                raise ValueError("this ControlNet has a guidance embedding: pass guidance")
            t, _ = self.time_embed(timestep, guidance=guidance, hidden_dtype=h.dtype)
        else:
            t, _ = self.time_embed(timestep, batch_size=batch, hidden_dtype=h.dtype)
        text = self.caption_norm(self.caption_projection(encoder_hidden_states).view(batch, -1, h.shape[-1]))
        residuals = []
        for block, out in zip(self.transformer_blocks, self.controlnet_blocks, strict=True):
            h = block(h, None, text, encoder_attention_mask, t, height // p, width // p)
            residuals.append(out(h) * conditioning_scale)
        return tuple(residuals)

"""The component configs of the SANA-Sprint architectures we build with random weights: the
published 0.6B / 1.6B shapes, the reduced real architecture (export tests, the bundle's smoke test,
the loopback hub) and the tiny test model. Pure data, no torch: `export.random_weights` builds
the modules from these, and `config_bounds` reads the published shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Published transformer shapes (diffusers' conversion script for SanaSprint_600M_P1_D28 / _1600M_P1_D20).
PUBLISHED_TRANSFORMERS: dict[str, dict[str, Any]] = {
    "sana-sprint-0.6b": dict(
        num_attention_heads=36,
        attention_head_dim=32,
        num_cross_attention_heads=16,
        cross_attention_head_dim=72,
        cross_attention_dim=1152,
        num_layers=28,
    ),
    "sana-sprint-1.6b": dict(
        num_attention_heads=70,
        attention_head_dim=32,
        num_cross_attention_heads=20,
        cross_attention_head_dim=112,
        cross_attention_dim=2240,
        num_layers=20,
    ),
}
# Gemma-2-2B (the published text encoder) and DC-AE f32c32 (mit-han-lab/dc-ae-f32c32-sana-1.1).
GEMMA2_2B: dict[str, Any] = dict(
    vocab_size=256000,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
)
_DCAE_BLOCKS = ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3
_DCAE_CHANNELS = (128, 256, 512, 512, 1024, 1024)
_DCAE_QKV = ((), (), (), (5,), (5,), (5,))
DCAE_F32C32: dict[str, Any] = dict(
    in_channels=3,
    latent_channels=32,
    attention_head_dim=32,
    encoder_block_types=_DCAE_BLOCKS,
    decoder_block_types=_DCAE_BLOCKS,
    encoder_block_out_channels=_DCAE_CHANNELS,
    decoder_block_out_channels=_DCAE_CHANNELS,
    encoder_layers_per_block=(2, 2, 2, 3, 3, 3),
    decoder_layers_per_block=(3, 3, 3, 3, 3, 3),
    encoder_qkv_multiscales=_DCAE_QKV,
    decoder_qkv_multiscales=_DCAE_QKV,
    upsample_block_type="interpolate",
    downsample_block_type="Conv",
    decoder_norm_types="rms_norm",
    decoder_act_fns="silu",
    scaling_factor=0.41407,
)
# The published transformer's norms (no bias in attention, no affine LayerNorm); the tiny model
# keeps diffusers' defaults.
PUBLISHED_NORMS: dict[str, Any] = dict(attention_bias=False, norm_elementwise_affine=False, norm_eps=1e-6)


@dataclass(frozen=True)
class ArchitectureConfigs:
    """The keyword arguments of `SanaTransformer2DModel`, `AutoencoderDC` and `Gemma2Config`
    (without ``vocab_size`` where the tokenizer sets it)."""

    transformer: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any]


def small_configs(
    width: int,
    latent_channels: int,
    layers: int,
    sample_size: int,
    vae_channels: tuple[int, int],
    vae_head_dim: int,
    downsample: str = "Conv",
    published_norms: bool = True,
) -> ArchitectureConfigs:
    """The published architecture cut down: the same component classes and kinds of blocks, two
    heads of ``width // 2`` in the transformer, a two-layer Gemma-2 twice as wide (its hidden size is
    the caption width), a two-stage DC-AE (a ResBlock stage, an EfficientViT stage)."""
    text_width = 2 * width
    return ArchitectureConfigs(
        transformer=dict(
            in_channels=latent_channels,
            out_channels=latent_channels,
            num_attention_heads=2,
            attention_head_dim=width // 2,
            num_layers=layers,
            num_cross_attention_heads=2,
            cross_attention_head_dim=width // 2,
            cross_attention_dim=width,
            caption_channels=text_width,
            sample_size=sample_size,
            patch_size=1,
            mlp_ratio=2.5,
            **(PUBLISHED_NORMS if published_norms else {}),
        ),
        vae=dict(
            in_channels=3,
            latent_channels=latent_channels,
            attention_head_dim=vae_head_dim,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=vae_channels,
            decoder_block_out_channels=vae_channels,
            encoder_qkv_multiscales=((), (5,)),
            decoder_qkv_multiscales=((), (5,)),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            downsample_block_type=downsample,
            upsample_block_type="interpolate",
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
            scaling_factor=DCAE_F32C32["scaling_factor"],
        ),
        text_encoder=dict(
            hidden_size=text_width,
            intermediate_size=2 * text_width,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=text_width // 2,
            max_position_embeddings=1024,
        ),
    )


def tiny_configs() -> ArchitectureConfigs:
    """The ~100k-parameter test model: 2x VAE, 4 latent channels, 32x32 default size."""
    return small_configs(
        width=16,
        latent_channels=4,
        layers=2,
        sample_size=16,
        vae_channels=(8, 8),
        vae_head_dim=2,
        downsample="conv",
        published_norms=False,
    )


def reduced_configs() -> ArchitectureConfigs:
    """The published architecture with its layers and widths cut: Gemma-2 with soft-capping, the
    transformer's 32 latent channels, guidance embedding and RMS qk-norm, the published norms, a
    DC-AE with ResBlocks, EfficientViT blocks and RMS norms; a few MB on disk."""
    return small_configs(
        width=32, latent_channels=32, layers=3, sample_size=8, vae_channels=(16, 32), vae_head_dim=8
    )


def published_configs(arch: str, text_encoder_layers: int | None = None) -> ArchitectureConfigs:
    """The published architecture ``arch`` at 1024 px; ``text_encoder_layers`` may shrink Gemma-2
    (26 layers) for machines without the memory."""
    if arch not in PUBLISHED_TRANSFORMERS:
        raise ValueError(f"arch must be one of {', '.join(PUBLISHED_TRANSFORMERS)}, got {arch!r}")
    text_encoder = dict(GEMMA2_2B, max_position_embeddings=8192)
    if text_encoder_layers is not None:
        text_encoder["num_hidden_layers"] = text_encoder_layers
    return ArchitectureConfigs(
        transformer=dict(
            in_channels=32,
            out_channels=32,
            caption_channels=GEMMA2_2B["hidden_size"],
            mlp_ratio=2.5,
            sample_size=32,
            patch_size=1,
            **PUBLISHED_NORMS,
            **PUBLISHED_TRANSFORMERS[arch],
        ),
        vae=dict(DCAE_F32C32),
        text_encoder=text_encoder,
    )

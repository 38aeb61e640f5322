"""The published SANA-Sprint architecture with its layers and widths cut: the same component classes
and config fields (Gemma-2 with soft-capping and a 256-wide head, the transformer's 32 latent
channels, guidance embedding and RMS qk-norm, a DC-AE with ResBlocks, EfficientViT blocks and RMS
norms, a Sprint ControlNet), random seeded weights, a few MB on disk. Tests, the bundle's smoke test
and the loopback hub use it to run the weight-free graph path end to end in seconds.

Two checkpoints made with different seeds have the same configs, so graphs exported from one bind
to the other's weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def reduced_pipeline(seed: int = 0, controlnet: bool = True) -> Any:
    """A `SanaSprintPipeline` (and, with ``controlnet``, a 2-block ControlNet as ``.controlnet``)."""
    import torch

    from ..devtools.builders import build_pipeline

    pipeline = build_pipeline(
        transformer_kwargs=dict(
            in_channels=32,
            out_channels=32,
            num_attention_heads=2,
            attention_head_dim=16,
            num_layers=3,
            num_cross_attention_heads=2,
            cross_attention_head_dim=16,
            cross_attention_dim=32,
            caption_channels=64,
            sample_size=8,
            patch_size=1,
            mlp_ratio=2.5,
            attention_bias=False,
            norm_elementwise_affine=False,
            norm_eps=1e-6,
        ),
        vae_kwargs=dict(
            in_channels=3,
            latent_channels=32,
            attention_head_dim=8,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=(16, 32),
            decoder_block_out_channels=(16, 32),
            encoder_qkv_multiscales=((), (5,)),
            decoder_qkv_multiscales=((), (5,)),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            downsample_block_type="Conv",
            upsample_block_type="interpolate",
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
            scaling_factor=0.41407,
        ),
        text_encoder_kwargs=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
            max_position_embeddings=1024,
        ),
        seed=seed,
    )
    pipeline.controlnet = None
    if controlnet:
        from ..engine.controlnet import SprintControlNetModel

        torch.manual_seed(seed + 3)
        net = SprintControlNetModel.from_transformer(pipeline.transformer, 2)
        for block in net.controlnet_blocks:
            torch.nn.init.normal_(block.weight, std=0.5)
        torch.nn.init.normal_(net.input_block.weight, std=0.5)
        pipeline.controlnet = net
    return pipeline


def save_reduced(path: str | Path, seed: int = 0, controlnet: bool = True) -> Path:
    """Save `reduced_pipeline` in diffusers layout (safetensors, ``controlnet/`` when it has one)."""
    path = Path(path)
    pipeline = reduced_pipeline(seed, controlnet)
    net = pipeline.controlnet
    del pipeline.controlnet
    pipeline.save_pretrained(path, safe_serialization=True)
    if net is not None:
        net.save_pretrained(path / "controlnet")
    return path

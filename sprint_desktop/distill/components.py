"""The Sprint-Shapes model's components: real diffusers/transformers classes at tiny size.

One place for their configs, so training, tests and the shipped model agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.errors import SprintError
from ..export.random_weights import word_level_tokenizer
from .world import VOCABULARY

MAX_CAPTION_TOKENS = 16
"""Longest caption of the grammar is 13 words; plus <bos>, with room to spare."""

# A tiny DC-AE for 64 px with an f8 latent (8x8x32): TOY_WORLD.md's second trial recipe.
VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    latent_channels=32,
    attention_head_dim=16,
    encoder_block_types=("ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock"),
    decoder_block_types=("ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock"),
    encoder_block_out_channels=(32, 64, 64, 64),
    decoder_block_out_channels=(32, 64, 64, 64),
    encoder_layers_per_block=(1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1),
    encoder_qkv_multiscales=((), (), (), (5,)),
    decoder_qkv_multiscales=((), (), (), (5,)),
    downsample_block_type="Conv",
    upsample_block_type="interpolate",
    decoder_norm_types="rms_norm",
    decoder_act_fns="silu",
    scaling_factor=1.0,  # set from the latents' standard deviation after training
)

TEXT_ENCODER_CONFIG: dict[str, Any] = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    max_position_embeddings=64,
)

TRANSFORMER_CONFIG: dict[str, Any] = dict(
    in_channels=32,
    out_channels=32,
    num_attention_heads=8,
    attention_head_dim=32,
    num_layers=8,
    num_cross_attention_heads=8,
    cross_attention_head_dim=32,
    cross_attention_dim=256,
    caption_channels=128,
    mlp_ratio=2.5,
    sample_size=8,
    patch_size=1,
    interpolation_scale=1.0,  # sincos positions: relations need absolute position
    guidance_embeds=True,
    qk_norm="rms_norm_across_heads",
)


def make_tokenizer() -> Any:
    return word_level_tokenizer(VOCABULARY, model_max_length=MAX_CAPTION_TOKENS)


def make_vae(seed: int = 0) -> Any:
    from diffusers import AutoencoderDC

    torch.manual_seed(seed)
    return AutoencoderDC(**VAE_CONFIG)


def make_text_encoder(vocab_size: int, seed: int = 0) -> Any:
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(seed)
    config = Gemma2Config(
        **TEXT_ENCODER_CONFIG, vocab_size=vocab_size, pad_token_id=0, bos_token_id=2, eos_token_id=1
    )
    return Gemma2Model(config)


def transformer_config(patch_size: int = 1, num_layers: int = 8, num_heads: int = 8) -> dict[str, Any]:
    """TRANSFORMER_CONFIG with the shape a training recipe may change: patch size (tokens of the
    8x8 latent: 64 at 1, 16 at 2), depth and width (``num_heads`` x 32 channels, self- and
    cross-attention alike)."""
    if patch_size not in (1, 2, 4) or not 1 <= num_layers <= 32 or not 1 <= num_heads <= 32:
        raise ValueError(
            f"transformer shape out of range: patch_size {patch_size} (1, 2 or 4), "
            f"num_layers {num_layers} (1-32), num_heads {num_heads} (1-32)"
        )
    head_dim = TRANSFORMER_CONFIG["attention_head_dim"]
    return {
        **TRANSFORMER_CONFIG,
        "patch_size": patch_size,
        "num_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_cross_attention_heads": num_heads,
        "cross_attention_dim": num_heads * head_dim,
    }


def make_transformer(seed: int = 0, **shape: int) -> Any:
    """The teacher's transformer at ``transformer_config(**shape)``, seeded."""
    from diffusers import SanaTransformer2DModel

    torch.manual_seed(seed)
    return SanaTransformer2DModel(**transformer_config(**shape))


def require_teacher(folder: str | Path) -> Path:
    """``folder`` when it holds a teacher (a run or a packaged folder: ``transformer/`` and
    ``text_encoder/``), else a one-line error."""
    missing = [
        sub for sub in ("transformer", "text_encoder") if not (Path(folder) / sub / "config.json").is_file()
    ]
    if missing:
        raise SprintError(
            f"{folder} is not a teacher folder: it has no {' or '.join(m + '/' for m in missing)}"
        )
    return Path(folder)

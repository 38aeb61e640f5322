"""Build SANA-Sprint pipelines from configs with random weights: the tiny test model and the
published 0.6B / 1.6B architectures (for benchmarks without a download).

All components are the real diffusers/transformers classes; the tokenizer is a local word-level
`tokenizers` model wrapped in transformers' fast tokenizer, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")

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
GEMMA2_2B = dict(
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
DCAE_F32C32 = dict(
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
TINY_WORDS = (
    "a an and one two three four small large red orange yellow green cyan blue purple black "
    "circle circles square squares triangle triangles cross crosses left right of above below"
).split()


def word_level_tokenizer(words: Iterable[str], model_max_length: int = 1024) -> Any:
    """A word-level fast tokenizer over ``words`` (+ pad/eos/bos/unk) that prepends ``<bos>`` like Gemma."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos = vocab["<bos>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=model_max_length,
        padding_side="right",
    )


def build_pipeline(
    transformer_kwargs: dict[str, Any],
    vae_kwargs: dict[str, Any],
    text_encoder_kwargs: dict[str, Any],
    words: Iterable[str] = TINY_WORDS,
    seed: int = 0,
) -> Any:
    """A `SanaSprintPipeline` with random weights (seeded) from the three component configs."""
    from diffusers import AutoencoderDC, SanaSprintPipeline, SanaTransformer2DModel, SCMScheduler
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = word_level_tokenizer(words)
    torch.manual_seed(seed)
    te_cfg = dict(text_encoder_kwargs)
    te_cfg.setdefault("vocab_size", len(tokenizer))
    text_encoder = Gemma2Model(Gemma2Config(**te_cfg, pad_token_id=0, bos_token_id=2, eos_token_id=1))
    torch.manual_seed(seed + 1)
    vae = AutoencoderDC(**vae_kwargs)
    torch.manual_seed(seed + 2)
    transformer = SanaTransformer2DModel(
        **{"guidance_embeds": True, "qk_norm": "rms_norm_across_heads", **transformer_kwargs}
    )
    scheduler = SCMScheduler(num_train_timesteps=1000, prediction_type="trigflow", sigma_data=0.5)
    return SanaSprintPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def tiny_pipeline(seed: int = 0) -> Any:
    """A ~100k-parameter SANA-Sprint pipeline for tests: 2x VAE, 4 latent channels, 32x32 default size."""
    return build_pipeline(
        transformer_kwargs=dict(
            in_channels=4,
            out_channels=4,
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=2,
            num_cross_attention_heads=2,
            cross_attention_head_dim=8,
            cross_attention_dim=16,
            caption_channels=32,
            sample_size=16,
            patch_size=1,
            mlp_ratio=2.5,
        ),
        vae_kwargs=dict(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=2,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=(8, 8),
            decoder_block_out_channels=(8, 8),
            encoder_qkv_multiscales=((), (5,)),
            decoder_qkv_multiscales=((), (5,)),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            downsample_block_type="conv",
            upsample_block_type="interpolate",
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
            scaling_factor=0.41407,
        ),
        text_encoder_kwargs=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=1024,
        ),
        seed=seed,
    )


def published_pipeline(arch: str, text_encoder_layers: int | None = None, seed: int = 0) -> Any:
    """The published architecture ``arch`` at 1024 px with random weights (nothing downloaded).

    ``text_encoder_layers`` may shrink Gemma-2 (26 layers) for machines without the memory.
    """
    if arch not in PUBLISHED_TRANSFORMERS:
        raise ValueError(f"arch must be one of {', '.join(PUBLISHED_TRANSFORMERS)}, got {arch!r}")
    te = dict(GEMMA2_2B, max_position_embeddings=8192)
    if text_encoder_layers is not None:
        te["num_hidden_layers"] = text_encoder_layers
    return build_pipeline(
        transformer_kwargs=dict(
            in_channels=32,
            out_channels=32,
            caption_channels=2304,
            mlp_ratio=2.5,
            attention_bias=False,
            sample_size=32,
            patch_size=1,
            norm_elementwise_affine=False,
            norm_eps=1e-6,
            **PUBLISHED_TRANSFORMERS[arch],
        ),
        vae_kwargs=DCAE_F32C32,
        text_encoder_kwargs=te,
        seed=seed,
    )


def save_pipeline(pipeline: Any, path: str | Path) -> Path:
    """Save in diffusers layout with safetensors only."""
    path = Path(path)
    pipeline.save_pretrained(path, safe_serialization=True)
    return path

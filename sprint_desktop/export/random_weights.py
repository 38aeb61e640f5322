"""SANA-Sprint pipelines with random seeded weights, built from the configs of
`formats.architectures`: the reduced real architecture (`reduced`), the published shapes for the
weight-free graphs (`graph_only`), and the tiny test model (`devtools.builders`).

All components are the real diffusers/transformers classes; the tokenizer is a local word-level
`tokenizers` model wrapped in transformers' fast tokenizer, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..formats.architectures import ArchitectureConfigs, published_configs

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
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


def build_pipeline(configs: ArchitectureConfigs, words: Iterable[str] = TINY_WORDS, seed: int = 0) -> Any:
    """A `SanaSprintPipeline` with random weights (seeded) from the three component configs."""
    import torch
    from diffusers import AutoencoderDC, SanaSprintPipeline, SanaTransformer2DModel, SCMScheduler
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = word_level_tokenizer(words)
    torch.manual_seed(seed)
    te_cfg = dict(configs.text_encoder)
    te_cfg.setdefault("vocab_size", len(tokenizer))
    text_encoder = Gemma2Model(Gemma2Config(**te_cfg, pad_token_id=0, bos_token_id=2, eos_token_id=1))
    torch.manual_seed(seed + 1)
    vae = AutoencoderDC(**configs.vae)
    torch.manual_seed(seed + 2)
    transformer = SanaTransformer2DModel(
        **{"guidance_embeds": True, "qk_norm": "rms_norm_across_heads", **configs.transformer}
    )
    scheduler = SCMScheduler(num_train_timesteps=1000, prediction_type="trigflow", sigma_data=0.5)
    return SanaSprintPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def published_pipeline(arch: str, text_encoder_layers: int | None = None, seed: int = 0) -> Any:
    """The published architecture ``arch`` at 1024 px with random weights (nothing downloaded).

    ``text_encoder_layers`` may shrink Gemma-2 (26 layers) for machines without the memory.
    """
    return build_pipeline(published_configs(arch, text_encoder_layers), seed=seed)

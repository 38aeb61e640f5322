"""Assemble the shipped Sprint-Shapes model: a SanaSprintPipeline folder in diffusers layout
(safetensors only) plus `sprint_desktop.json`, the engine's per-model defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.trigflow import SIGMA_D
from .components import MAX_CAPTION_TOKENS
from .world import IMAGE_SIZE

MAX_MODEL_MB = 50


def package(vae: str, teacher: str, student: str, out: str, controlnet: str | None = None) -> Path:
    """Write the pipeline (tokenizer and text encoder from the teacher run, the student
    transformer, the VAE, an SCM scheduler, optionally a ControlNet) to ``out``; return the folder.

    The transformer and the ControlNet are stored in fp16 (half the size; the engine loads them in
    fp32 on the CPU), which keeps the model and its ControlNet under the 50 MB budget."""
    import torch
    from diffusers import AutoencoderDC, SanaSprintPipeline, SanaTransformer2DModel, SCMScheduler
    from transformers import Gemma2Model, PreTrainedTokenizerFast

    pipe: Any = SanaSprintPipeline(
        tokenizer=PreTrainedTokenizerFast.from_pretrained(Path(teacher) / "tokenizer"),
        text_encoder=Gemma2Model.from_pretrained(Path(teacher) / "text_encoder"),
        vae=AutoencoderDC.from_pretrained(vae),
        transformer=SanaTransformer2DModel.from_pretrained(student),
        scheduler=SCMScheduler(sigma_data=SIGMA_D),
    )
    folder = Path(out)
    pipe.transformer.to(torch.float16)
    pipe.save_pretrained(folder, safe_serialization=True)
    if controlnet:
        from ..engine.controlnet import SprintControlNetModel

        SprintControlNetModel.from_pretrained(controlnet).to(torch.float16).save_pretrained(
            folder / "controlnet", safe_serialization=True
        )
    settings = {
        "name": "Sprint-Shapes",
        "complex_human_instruction": False,
        "max_sequence_length": MAX_CAPTION_TOKENS,
        "default_size": [IMAGE_SIZE, IMAGE_SIZE],
        "default_steps": 1,
    }
    (folder / "sprint_desktop.json").write_text(json.dumps(settings, indent=2) + "\n")
    size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    if size_mb > MAX_MODEL_MB:
        raise RuntimeError(f"the packaged model is {size_mb:.1f} MB, over the {MAX_MODEL_MB} MB budget")
    return folder

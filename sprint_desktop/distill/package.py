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
EXAMPLE_PROMPTS = (
    "a red circle",
    "two blue squares",
    "a large green triangle",
    "a yellow circle left of a purple cross",
    "three orange crosses",
)
"""Captions of the world's grammar (no held-out colour-shape pair) that the app offers as examples."""


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
        "example_prompts": list(EXAMPLE_PROMPTS),  # shown in the app as clickable examples
    }
    (folder / "sprint_desktop.json").write_text(json.dumps(settings, indent=2) + "\n")
    size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    if size_mb > MAX_MODEL_MB:
        raise RuntimeError(f"the packaged model is {size_mb:.1f} MB, over the {MAX_MODEL_MB} MB budget")
    return folder


TEACHER_TIMESTEP_SCALE = 1e-3
"""Stock `SanaPipeline` feeds the transformer the scheduler's timesteps (flow time x 1000) times
``timestep_scale``; our teacher was trained on the flow time itself."""


def without_guidance_embedding(transformer: Any) -> Any:
    """The teacher with its guidance embedding folded away, for stock `SanaPipeline`.

    Our teacher is trained with a guidance embedding always fed 0 (so the student inherits the
    layer, as SANA-Sprint adds it). At guidance 0 that branch adds a constant vector to the time
    embedding; adding it to the bias of the time MLP's last layer gives the same network without
    the branch (`AdaLayerNormSingle`, what `SanaPipeline` runs)."""
    import torch
    from diffusers import SanaTransformer2DModel

    if not transformer.config.guidance_embeds:
        return transformer
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    plain: Any = SanaTransformer2DModel(
        **{**config, "guidance_embeds": False, "timestep_scale": TEACHER_TIMESTEP_SCALE}
    )
    emb = transformer.time_embed
    with torch.no_grad():
        zero = torch.zeros(1)
        constant = emb.guidance_embedder(emb.guidance_condition_proj(zero))[0]
        state = {}
        for key, value in transformer.state_dict().items():
            if key.startswith("time_embed.guidance_"):
                continue
            if key.startswith("time_embed.timestep_embedder."):
                key = key.replace("time_embed.", "time_embed.emb.", 1)
            state[key] = value
        state["time_embed.emb.timestep_embedder.linear_2.bias"] = (
            state["time_embed.emb.timestep_embedder.linear_2.bias"] + constant
        )
    plain.load_state_dict(state, strict=True)
    return plain


def with_guidance_embedding(transformer: Any) -> Any:
    """The inverse, for distilling from a packaged teacher: a guidance embedding whose output is 0
    for every guidance (last layer zero-initialised), the teacher's time MLP unchanged, and the
    flow time fed as is. Equal to the packaged teacher at every input."""
    import torch
    from diffusers import SanaTransformer2DModel

    if transformer.config.guidance_embeds:
        return transformer
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    guided: Any = SanaTransformer2DModel(**{**config, "guidance_embeds": True, "timestep_scale": 1.0})
    state = guided.state_dict()
    for key, value in transformer.state_dict().items():
        state[key.replace("time_embed.emb.", "time_embed.", 1)] = value
    state["time_embed.guidance_embedder.linear_2.weight"] = torch.zeros_like(
        state["time_embed.guidance_embedder.linear_2.weight"]
    )
    state["time_embed.guidance_embedder.linear_2.bias"] = torch.zeros_like(
        state["time_embed.guidance_embedder.linear_2.bias"]
    )
    guided.load_state_dict(state, strict=True)
    return guided


TRAINING_FILE = "training.json"
"""In a packaged teacher: which run and step it is (``{"config": <the run's config.json>, "step": N,
"cpu_s": S}``), so that training can go on from the folder (`devtools.checkpoints.unpack_folder`)."""


def training_record(teacher: str | Path) -> dict[str, Any]:
    """The run's ``config.json`` and, when it has a ``checkpoint.pt``, its step and CPU seconds."""
    import torch

    run = Path(teacher)
    record: dict[str, Any] = {"config": {}}
    if (run / "config.json").is_file():
        record["config"] = json.loads((run / "config.json").read_text())
    if (run / "checkpoint.pt").is_file():
        state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True, mmap=True)
        record["step"] = int(state["step"])
        record["cpu_s"] = float(state.get("cpu_s", 0.0))
    return record


def package_teacher(vae: str, teacher: str, out: str) -> Path:
    """Write the teacher run (EMA transformer and text encoder, tokenizer) with the VAE as a stock
    `SanaPipeline` folder (flow-matching Euler scheduler, no shift), transformer in fp16, so that
    anyone can sample it with diffusers alone and re-distil from the repo
    (`sprint distill student --teacher OUT` reads the same layout). `TRAINING_FILE` says which
    run and step it is."""
    import torch
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Model, PreTrainedTokenizerFast

    pipe: Any = SanaPipeline(
        tokenizer=PreTrainedTokenizerFast.from_pretrained(Path(teacher) / "tokenizer"),
        text_encoder=Gemma2Model.from_pretrained(Path(teacher) / "text_encoder"),
        vae=AutoencoderDC.from_pretrained(vae),
        transformer=without_guidance_embedding(
            SanaTransformer2DModel.from_pretrained(Path(teacher) / "transformer")
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
    )
    folder = Path(out)
    pipe.transformer.to(torch.float16)
    pipe.save_pretrained(folder, safe_serialization=True)
    settings = {
        "name": "Sprint-Shapes teacher (flow matching; 20 Euler steps, CFG 4.5)",
        "complex_human_instruction": False,
        "max_sequence_length": MAX_CAPTION_TOKENS,
        "default_size": [IMAGE_SIZE, IMAGE_SIZE],
    }
    (folder / "sprint_desktop.json").write_text(json.dumps(settings, indent=2) + "\n")
    (folder / TRAINING_FILE).write_text(json.dumps(training_record(teacher), indent=2) + "\n")
    return folder

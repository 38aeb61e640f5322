"""`sprint evaluate`: the model card's table rows, from the project's own evaluator.

A row is a model and a step count; columns are compliance (all, seen, held-out, per family), the
distribution distance (Frechet distance in the frozen FeatureNet's space, against renders of the
same scenes) with precision/recall in that space, and CPU milliseconds per image. Captions come from
the grammar with a fixed seed, half of them with held-out colour-shape pairs, none used in training
(training draws from other seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .judge import compliance
from .train_student import CARD_SEED, eval_scenes, evaluate_engine
from .world import render

COLUMNS = ("all", "seen", "held_out", "single", "two", "relation", "counting")
DISTRIBUTION = ("fd", "precision", "recall")


@dataclass(frozen=True)
class Reference:
    """The frozen FeatureNet and the features of the real renders of the evaluation scenes: made
    once per evaluation, shared by every row (step count)."""

    net: Any
    real: np.ndarray


def reference(scenes: list[Any]) -> Reference:
    from .features import load_feature_net

    net = load_feature_net()
    return Reference(net, net.features(np.stack([render(s) for s in scenes])))


def distribution_scores(images: list[np.ndarray] | np.ndarray, ref: Reference) -> dict[str, float]:
    """Frechet distance and precision/recall of ``images`` against the reference renders."""
    from .features import frechet_distance, precision_recall

    fake = ref.net.features(np.stack(list(images)))
    precision, recall = precision_recall(ref.real, fake)
    return {"fd": frechet_distance(ref.real, fake), "precision": precision, "recall": recall}


def _row(
    model: str, sampler: str, steps: int, ms: float, scores: dict, dist: dict, seed: int
) -> dict[str, Any]:
    return {
        "model": model,
        "sampler": sampler,
        "steps": steps,
        "ms_per_image": round(ms, 1),
        **{k: round(float(scores.get(k, float("nan"))), 3) for k in COLUMNS},
        **{k: round(float(dist[k]), 3) for k in DISTRIBUTION},
        "captions_seed": seed,
    }


def load_engine(model: str) -> Any:
    """Our engine over a model folder, loaded on the CPU: what every measure here samples."""
    from ..engine.torch_backend import TorchEngine

    engine = TorchEngine(model, device="cpu")
    engine.load()
    return engine


def evaluate_model(
    model: str, steps: list[int], n_images: int, seed: int = CARD_SEED, engine: Any = None
) -> list[dict[str, Any]]:
    """The table's rows for ``model`` (``engine``: the same folder already loaded)."""
    engine = engine or load_engine(model)
    scenes = eval_scenes(n_images, seed)
    captions = [s.caption for s in scenes]
    ref = reference(scenes)
    rows = []
    for n in steps:
        scores, ms, images = evaluate_engine(engine, captions, n)
        dist = distribution_scores(images, ref)
        rows.append(_row(Path(model).name, "TrigFlow (engine)", n, ms, scores, dist, seed))
    return rows


def evaluate_control(model: str, n_sketches: int, engine: Any = None) -> dict[str, Any]:
    """The model's ControlNet at one step on ``n_sketches`` sketches not used in training: sketch
    IoU and compliance with the sketch (`train_controlnet.evaluate`, the training runs' own measure)."""
    from ..core.errors import SprintError
    from .train_controlnet import evaluate

    engine = engine or load_engine(model)
    if engine.controlnet is None:
        raise SprintError(f"{model} ships no ControlNet (no controlnet/ folder): nothing to evaluate")
    return {
        "model": Path(model).name,
        "sketches": n_sketches,
        **evaluate(engine, engine.controlnet, n_sketches),
    }


@dataclass(frozen=True)
class Teacher:
    """A teacher run's EMA weights (tokenizer, text encoder, transformer) and the VAE that decodes."""

    tokenizer: Any
    text_encoder: Any
    transformer: Any
    vae: Any


def load_teacher(teacher: str, vae: str) -> Teacher:
    from diffusers import AutoencoderDC, SanaTransformer2DModel
    from transformers import Gemma2Model, PreTrainedTokenizerFast

    return Teacher(
        PreTrainedTokenizerFast.from_pretrained(Path(teacher) / "tokenizer"),
        Gemma2Model.from_pretrained(Path(teacher) / "text_encoder").eval(),
        SanaTransformer2DModel.from_pretrained(Path(teacher) / "transformer").eval(),
        AutoencoderDC.from_pretrained(vae).eval(),
    )


def teacher_images(
    t: Teacher, captions: list[str], steps: int, guidance: float, seed: int = 0
) -> list[np.ndarray]:
    """uint8 images of ``captions``: flow Euler with CFG (`euler_sample`), 32 at a time, the batch
    starting at caption i seeded ``seed + i``."""
    from .sampling import euler_sample
    from .train_vae import to_uint8

    images = []
    with torch.no_grad():
        for i in range(0, len(captions), 32):
            x0 = euler_sample(
                t.transformer,
                t.tokenizer,
                t.text_encoder,
                captions[i : i + 32],
                steps,
                guidance,
                seed=seed + i,
            )
            images.append(to_uint8(t.vae.decode(x0 / t.vae.config.scaling_factor).sample))
    return list(np.concatenate(images))


def evaluate_teacher(
    teacher: str,
    vae: str,
    steps: list[int],
    n_images: int,
    guidance: float = 4.5,
    seed: int = CARD_SEED,
) -> list[dict[str, Any]]:
    import time

    parts = load_teacher(teacher, vae)
    scenes = eval_scenes(n_images, seed)
    captions = [s.caption for s in scenes]
    ref = reference(scenes)
    rows = []
    for n in steps:
        start = time.perf_counter()
        generated = teacher_images(parts, captions, n, guidance)
        ms = (time.perf_counter() - start) * 1e3 / len(captions)
        scores = compliance(generated, captions)
        dist = distribution_scores(generated, ref)
        rows.append(_row("teacher", f"flow Euler + CFG {guidance}", n, ms, scores, dist, seed))
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    cols = (*COLUMNS, *DISTRIBUTION)
    head = "| model | sampler | steps | " + " | ".join(cols) + " | CPU ms/image |"
    lines = [head, "|" + "---|" * (len(cols) + 4)]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sampler']} | {r['steps']} | "
            + " | ".join(f"{r[c]:.3f}" for c in cols)
            + f" | {r['ms_per_image']} |"
        )
    return "\n".join(lines)


def write(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")


GRID_PROMPTS = {
    "seen": [
        "a red circle",
        "a large blue square",
        "two green crosses",
        "a yellow triangle left of a purple circle",
        "a black square",
        "three orange circles",
        "a cyan cross above a red square",
        "a small green triangle and a blue circle",
    ],
    "held-out": [
        "a red triangle",
        "a orange cross",
        "a yellow square",
        "a green circle",
        "a cyan triangle right of a black square",
        "two blue crosses",
        "a purple square below a red circle",
        "a black circle and a green square",
    ],
}
"""The model card's sample grids: one row of seen colour-shape pairs, one with held-out pairs."""


def save_grid(rows: list[list[np.ndarray]], path: Path, scale: int = 2) -> Path:
    """A PNG of 64x64 tiles, one row of ``rows`` per grid row, each tile scaled up ``scale`` times."""
    from PIL import Image

    size, pad = 64 * scale, 4
    n_cols = max(len(r) for r in rows)
    grid = Image.new("RGB", (n_cols * (size + pad) + pad, len(rows) * (size + pad) + pad), (200, 200, 200))
    for y, row in enumerate(rows):
        for x, image in enumerate(row):
            tile = Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST)
            grid.paste(tile, (pad + x * (size + pad), pad + y * (size + pad)))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def sample_grid(
    model: str, path: Path, steps: int = 1, seed: int = 0, scale: int = 2, engine: Any = None
) -> Path:
    """A PNG grid of ``GRID_PROMPTS`` (a row per group) generated by our engine at ``steps``
    (``engine``: the same folder already loaded)."""
    from ..core.request import GenerateRequest

    engine = engine or load_engine(model)
    rows = [
        [engine.generate(GenerateRequest(p, steps=steps, seed=seed)).image for p in prompts]
        for prompts in GRID_PROMPTS.values()
    ]
    return save_grid(rows, path, scale)


def teacher_grid(
    teacher: str, vae: str, path: Path, steps: int = 20, guidance: float = 4.5, scale: int = 2
) -> Path:
    """The same grid from a teacher run (flow Euler with CFG, as `evaluate_teacher` samples)."""
    parts = load_teacher(teacher, vae)
    rows = [teacher_images(parts, list(prompts), steps, guidance) for prompts in GRID_PROMPTS.values()]
    return save_grid(rows, path, scale)

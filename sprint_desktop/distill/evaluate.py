"""`sprint evaluate`: the model card's table rows, from the project's own evaluator.

A row is a model and a step count; columns are compliance (all, seen, held-out, per family) and
CPU milliseconds per image. Captions come from the grammar with a fixed seed, half of them with
held-out colour-shape pairs, none used in training (training draws from other seeds).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .judge import compliance
from .train_student import eval_captions, evaluate_engine

COLUMNS = ("all", "seen", "held_out", "single", "two", "relation", "counting")


def evaluate_model(model: str, steps: list[int], n_images: int) -> list[dict[str, Any]]:
    from ..engine.torch_backend import TorchEngine

    engine = TorchEngine(model, device="cpu")
    engine.load()
    captions = eval_captions(n_images)
    rows = []
    for n in steps:
        scores, ms = evaluate_engine(engine, captions, n)
        rows.append(
            {
                "model": Path(model).name,
                "sampler": "TrigFlow (engine)",
                "steps": n,
                "ms_per_image": round(ms, 1),
                **{k: round(float(scores.get(k, float("nan"))), 3) for k in COLUMNS},
            }
        )
    return rows


def evaluate_teacher(
    teacher: str, vae: str, steps: list[int], n_images: int, guidance: float = 4.5
) -> list[dict[str, Any]]:
    import time

    from diffusers import AutoencoderDC, SanaTransformer2DModel
    from transformers import Gemma2Model, PreTrainedTokenizerFast

    from .train_teacher import euler_sample
    from .train_vae import to_uint8

    tok = PreTrainedTokenizerFast.from_pretrained(Path(teacher) / "tokenizer")
    te = Gemma2Model.from_pretrained(Path(teacher) / "text_encoder").eval()
    tf = SanaTransformer2DModel.from_pretrained(Path(teacher) / "transformer").eval()
    ae = AutoencoderDC.from_pretrained(vae).eval()
    captions = eval_captions(n_images)
    rows = []
    for n in steps:
        images, start = [], time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(captions), 32):
                x0 = euler_sample(tf, tok, te, captions[i : i + 32], n, guidance, seed=i)
                images.append(to_uint8(ae.decode(x0 / ae.config.scaling_factor).sample))
        ms = (time.perf_counter() - start) * 1e3 / len(captions)
        scores = compliance(list(np.concatenate(images)), captions)
        rows.append(
            {
                "model": "teacher",
                "sampler": f"flow Euler + CFG {guidance}",
                "steps": n,
                "ms_per_image": round(ms, 1),
                **{k: round(float(scores.get(k, float("nan"))), 3) for k in COLUMNS},
            }
        )
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = "| model | sampler | steps | " + " | ".join(COLUMNS) + " | CPU ms/image |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sampler']} | {r['steps']} | "
            + " | ".join(f"{r[c]:.3f}" for c in COLUMNS)
            + f" | {r['ms_per_image']} |"
        )
    return "\n".join(lines)


def write(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")

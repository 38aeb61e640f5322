"""Train the Sprint-Shapes teacher: flow matching in the DC-AE latent, with classifier-free-guidance
dropout (empty captions) and the text encoder trained jointly.

Reads top to bottom: config -> frozen VAE -> tokenizer, text encoder, transformer -> loop
(logit-normal flow time s, x_s = (1-s) x0 + s z, target v = z - x0, MSE) with EMA -> periodic
evaluation (Euler sampling with CFG, judged by the compliance judge) -> checkpoint + config.
Runs unchanged under `accelerate launch`; resumes from ``out/checkpoint.pt``.

    sprint distill teacher --vae runs/vae/vae --out runs/teacher --iters 4000
"""

from __future__ import annotations

import copy
import json
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .components import make_text_encoder, make_tokenizer, make_transformer
from .judge import compliance
from .sampling import encode_text, euler_sample, velocity
from .schedule import make_schedule
from .train_vae import to_uint8
from .world import EMPTY_CAPTION_P


@dataclass
class TeacherConfig:
    vae: str = "runs/vae/vae"
    out: str = "runs/teacher"
    iters: int = 4000
    batch: int = 64
    lr: float = 1e-3  # the sweep's choice (docs/TRAINING.md): 1e-3 beat 3e-4 at equal CPU time
    warmup: int = 500
    ema: float = 0.999
    empty_p: float = EMPTY_CAPTION_P  # CFG dropout: captions replaced by ""
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    eval_images: int = 96
    eval_steps: int = 20
    eval_guidance: float = 4.5
    cache: int = 0  # scenes encoded once and reused (0: render and encode fresh scenes every step)
    ema_reset: bool = False  # on resume, restart the EMA from the raw weights (e.g. after changing --ema)
    mixed_precision: str = "no"  # "bf16": autocast (faster on CPUs with AVX512-BF16 and on GPUs)
    patch_size: int = 2  # transformer shape (components.transformer_config): 16 tokens (1: 64, 2.3x dearer)
    num_layers: int = 8
    num_heads: int = 8  # width = num_heads x 32
    lr_schedule: str = "constant"  # after the warm-up: "constant" or "cosine" (to 0 at iters)
    decay_start: int = 0  # "cosine" holds the rate until this step, then decays (a cool-down branch)
    cpu_budget_min: float = (
        0.0  # stop (checkpoint + save) after this many CPU minutes of training; 0: no limit
    )
    threads: int = 0  # torch intra-op threads (0: torch's default)
    val_images: int = 256  # fixed validation batch for the flow-matching loss at each evaluation


def make_optimizer(params: list[Any], cfg: TeacherConfig, step: int = 0) -> tuple[Any, Any]:
    """The teacher's AdamW and learning-rate schedule (`lr_factor`) over ``params`` (the
    transformer's, then the text encoder's), the schedule at ``step`` as after that many steps of
    `train`; the optimizer's moments are fresh."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    return opt, make_schedule(opt, cfg, step)


def ema_decay(step: int, target: float) -> float:
    """EMA decay with warm-up, min(target, (1 + step) / (10 + step)): early averages are not
    dominated by the random initial weights."""
    return min(target, (1 + step) / (10 + step))


def update_ema(ema: Any, model: Any, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
            pe.lerp_(pm, 1 - decay)


@dataclass(frozen=True)
class EvalSet:
    """What every evaluation of one run compares against, made once: the evaluation scenes (half
    with held-out pairs), the FeatureNet reference of their renders (distribution distance), and a
    fixed validation batch (latents of other scenes, noise, flow times) for the flow-matching loss."""

    captions: list[str]
    reference: Any
    val_x0: torch.Tensor
    val_z: torch.Tensor
    val_s: torch.Tensor
    val_captions: list[str]


def make_eval_set(vae: Any, cfg: TeacherConfig) -> EvalSet:
    from .evaluate import reference
    from .train_student import eval_scenes
    from .train_vae import to_tensor
    from .world import render

    scenes = eval_scenes(cfg.eval_images)
    val = eval_scenes(cfg.val_images, seed=4242)
    device = next(vae.parameters()).device
    with torch.no_grad():
        x0 = torch.cat(
            [
                vae.encode(to_tensor(np.stack([render(v) for v in val[i : i + 64]])).to(device)).latent
                for i in range(0, len(val), 64)
            ]
        )
    g = torch.Generator().manual_seed(4242)
    n = len(val)
    return EvalSet(
        captions=[sc.caption for sc in scenes],
        reference=reference(scenes),
        val_x0=x0 * vae.config.scaling_factor,
        val_z=torch.randn(x0.shape, generator=g).to(device),
        val_s=((torch.arange(n) + 0.5) / n).to(device),  # flow times spread evenly over (0, 1)
        val_captions=[v.caption for v in val],
    )


@torch.no_grad()
def validation_loss(transformer: Any, tokenizer: Any, text_encoder: Any, ev: EvalSet) -> float:
    """The flow-matching loss on the fixed validation batch: a low-noise learning curve long before
    the compliance judge passes anything."""
    total = 0.0
    for i in range(0, len(ev.val_captions), 64):
        x0, z, s = ev.val_x0[i : i + 64], ev.val_z[i : i + 64], ev.val_s[i : i + 64]
        embeds, mask = encode_text(tokenizer, text_encoder, ev.val_captions[i : i + 64], x0.device)
        x_s = (1 - s.view(-1, 1, 1, 1)) * x0 + s.view(-1, 1, 1, 1) * z
        v = velocity(transformer, x_s, s, embeds, mask)
        total += F.mse_loss(v.float(), z - x0, reduction="sum").item()
    return total / ev.val_x0.numel()


@torch.no_grad()
def evaluate(
    transformer: Any, tokenizer: Any, text_encoder: Any, vae: Any, cfg: TeacherConfig, ev: EvalSet
) -> dict[str, float]:
    """Compliance (all / seen / held-out) of teacher samples (``cfg.eval_steps`` Euler steps, CFG),
    their Frechet distance to the renders of the same scenes, and the validation loss."""
    from .features import frechet_distance

    images = []
    for i in range(0, len(ev.captions), 32):
        x0 = euler_sample(
            transformer,
            tokenizer,
            text_encoder,
            ev.captions[i : i + 32],
            cfg.eval_steps,
            cfg.eval_guidance,
            seed=i,
        )
        images.append(to_uint8(vae.decode(x0 / vae.config.scaling_factor).sample))
    images_ = np.concatenate(images)
    scores = compliance(list(images_), ev.captions)
    out = {f"judge_{k}": round(float(scores[k]), 3) for k in ("all", "seen", "held_out")}
    out["fd"] = round(frechet_distance(ev.reference.real, ev.reference.net.features(images_)), 2)
    out["val_loss"] = round(validation_loss(transformer, tokenizer, text_encoder, ev), 5)
    return out


class StopRequest:
    """Set by SIGTERM / SIGINT: the loop saves a checkpoint at the end of the current step and
    returns, so a background run can be stopped without losing more than one step."""

    def __init__(self) -> None:
        self.asked = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._ask)

    def _ask(self, *_: Any) -> None:
        self.asked = True


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: written beside ``path`` and renamed, so a kill never leaves half a checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(cfg: TeacherConfig) -> Path:
    from accelerate import Accelerator
    from diffusers import AutoencoderDC

    torch.set_flush_denormal(True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    device = accelerator.device

    vae = AutoencoderDC.from_pretrained(cfg.vae).to(device).eval().requires_grad_(False)
    tokenizer = make_tokenizer()
    text_encoder = make_text_encoder(len(tokenizer), cfg.seed)
    transformer = make_transformer(
        cfg.seed, patch_size=cfg.patch_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads
    )
    params = [*transformer.parameters(), *text_encoder.parameters()]
    opt, sched = make_optimizer(params, cfg)
    ema_tf, ema_te = (
        copy.deepcopy(transformer).requires_grad_(False),
        copy.deepcopy(text_encoder).requires_grad_(False),
    )
    start, cpu_s = 0, 0.0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        transformer.load_state_dict(state["transformer"])
        text_encoder.load_state_dict(state["text_encoder"])
        ema_tf.load_state_dict(state["transformer" if cfg.ema_reset else "ema_transformer"])
        ema_te.load_state_dict(state["text_encoder" if cfg.ema_reset else "ema_text_encoder"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, cpu_s = int(state["step"]), float(state.get("cpu_s", 0.0))
        accelerator.print(f"resumed from step {start}")
    rng = np.random.default_rng(cfg.seed + 7919 * start + accelerator.process_index)
    transformer, text_encoder, opt = accelerator.prepare(transformer, text_encoder, opt)
    ema_tf.to(device)
    ema_te.to(device)
    source = data.TrainingLatents(vae, cfg.vae, cfg.cache, cfg.seed)
    ev = make_eval_set(vae, cfg)
    stop = StopRequest()

    def checkpoint(done: int) -> None:
        if accelerator.is_main_process:
            save_checkpoint(
                ckpt,
                {
                    "transformer": accelerator.unwrap_model(transformer).state_dict(),
                    "text_encoder": accelerator.unwrap_model(text_encoder).state_dict(),
                    "ema_transformer": ema_tf.state_dict(),
                    "ema_text_encoder": ema_te.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "step": done,
                    "cpu_s": cpu_s,
                },
            )

    log = (out / "log.jsonl").open("a")
    t0, c0 = time.time(), time.process_time()
    for step in range(start, cfg.iters):
        x0, captions = source.batch(rng, cfg.batch, cfg.empty_p)
        z = torch.randn_like(x0)
        s = torch.sigmoid(torch.randn(x0.shape[0], device=device))  # logit-normal flow time
        x_s = (1 - s.view(-1, 1, 1, 1)) * x0 + s.view(-1, 1, 1, 1) * z
        with accelerator.autocast():
            embeds, mask = encode_text(tokenizer, text_encoder, captions, device)
            v = velocity(transformer, x_s, s, embeds, mask)
        loss = F.mse_loss(v.float(), (z - x0).float())
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        for ema, model in ((ema_tf, transformer), (ema_te, text_encoder)):
            update_ema(ema, accelerator.unwrap_model(model), ema_decay(step, cfg.ema))
        done = step + 1
        cpu_s += time.process_time() - c0
        over = cfg.cpu_budget_min > 0 and cpu_s >= 60 * cfg.cpu_budget_min
        last = done == cfg.iters or over
        if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or last or stop.asked:
            rec: dict[str, Any] = {
                "step": done,
                "loss": round(loss.item(), 5),
                "s_per_it": round((time.time() - t0) / (done - start), 3),
                "cpu_min": round(cpu_s / 60, 3),
                "lr": round(float(sched.get_last_lr()[0]), 7),
            }
            if done % cfg.eval_every == 0 or last:
                rec.update(evaluate(ema_tf, tokenizer, ema_te, vae, cfg, ev))
            if done % cfg.eval_every == 0 or last or stop.asked:
                checkpoint(done)
            accelerator.print(json.dumps(rec))
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if over or stop.asked:
            break
        c0 = time.process_time()  # evaluation and checkpoints are not training time
    if accelerator.is_main_process:  # also when stopped early: the EMA weights so far
        ema_tf.save_pretrained(out / "transformer", safe_serialization=True)
        ema_te.save_pretrained(out / "text_encoder", safe_serialization=True)
        tokenizer.save_pretrained(out / "tokenizer")
    return out

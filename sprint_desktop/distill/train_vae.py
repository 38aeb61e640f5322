"""Train the Sprint-Shapes DC-AE: 64 px <-> 8x8x32 latents, on renders of the world.

Reads top to bottom: config -> data -> model -> loop (L1 + MSE + 0.5 image-gradient loss, AdamW,
cosine decay) -> evaluation with the compliance judge on reconstructions -> save. Runs unchanged
under `accelerate launch`; resumes from ``out/checkpoint.pt``; writes ``out/config.json``.

    sprint distill vae --out runs/vae --iters 1200
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .components import make_vae
from .judge import compliance
from .world import render, sample_scene


@dataclass
class VAEConfig:
    out: str = "runs/vae"
    iters: int = 1200
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_weight: float = 0.5
    seed: int = 0
    eval_every: int = 300
    eval_images: int = 200
    log_every: int = 50
    init: str = ""  # start from this trained VAE folder instead of random weights
    decoder_only: bool = False  # train the decoder only: the latent space (and a teacher on it) stays valid
    threads: int = 0  # torch intra-op threads (0: torch's default)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def gradient_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between image gradients: keeps shape edges crisp."""

    def dx(t: torch.Tensor) -> torch.Tensor:
        return t[..., :, 1:] - t[..., :, :-1]

    def dy(t: torch.Tensor) -> torch.Tensor:
        return t[..., 1:, :] - t[..., :-1, :]

    return F.l1_loss(dx(x), dx(y)) + F.l1_loss(dy(x), dy(y))


def batch_of_renders(
    rng: np.random.Generator, n: int, held_out: bool | None = None
) -> tuple[np.ndarray, list[str]]:
    scenes = [sample_scene(rng, held_out=held_out) for _ in range(n)]
    return np.stack([render(s) for s in scenes]), [s.caption for s in scenes]


@torch.no_grad()
def evaluate(vae: Any, n: int, seed: int = 1234) -> dict[str, float]:
    """Judge compliance of reconstructions of held-out-inclusive renders, and the latents' std."""
    vae.eval()
    images, captions = batch_of_renders(np.random.default_rng(seed), n)
    x = to_tensor(images)
    latents = vae.encode(x).latent
    recon = to_uint8(vae.decode(latents).sample)
    scores = compliance(list(recon), captions)
    vae.train()
    return {
        "judge": scores["all"],
        "judge_clean": compliance(list(images), captions)["all"],
        "mae_255": float(np.abs(recon.astype(float) - images.astype(float)).mean()),
        "latent_std": float(latents.std()),
    }


def train(cfg: VAEConfig) -> Path:
    from accelerate import Accelerator

    torch.set_flush_denormal(True)
    accelerator = Accelerator()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    rng = np.random.default_rng(cfg.seed + accelerator.process_index)

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vae = make_vae(cfg.seed)
    if cfg.init:
        from diffusers import AutoencoderDC

        vae = AutoencoderDC.from_pretrained(cfg.init).train()
    if cfg.decoder_only:
        if not cfg.init:
            raise ValueError("decoder_only needs init: the trained VAE whose encoder stays frozen")
        vae.encoder.requires_grad_(False)
    trained = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, cfg.iters) / cfg.iters))
    )
    start = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = int(state["step"])
        rng = np.random.default_rng(cfg.seed + 1000 * start)
        accelerator.print(f"resumed from step {start}")
    vae, opt = accelerator.prepare(vae, opt)
    log = (out / "log.jsonl").open("a")
    t0 = time.time()
    for step in range(start, cfg.iters):
        images, _ = batch_of_renders(rng, cfg.batch)
        x = to_tensor(images).to(accelerator.device)
        model = accelerator.unwrap_model(vae)
        with torch.set_grad_enabled(not cfg.decoder_only):
            latent = model.encode(x).latent
        recon = model.decode(latent).sample
        loss = F.l1_loss(recon, x) + F.mse_loss(recon, x) + cfg.grad_weight * gradient_loss(recon, x)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        opt.step()
        sched.step()
        done = step + 1
        if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or done == cfg.iters:
            rec = {
                "step": done,
                "loss": round(loss.item(), 5),
                "s_per_it": round((time.time() - t0) / (done - start), 3),
            }
            if done % cfg.eval_every == 0 or done == cfg.iters:
                rec.update(evaluate(accelerator.unwrap_model(vae), cfg.eval_images))
                if accelerator.is_main_process:
                    torch.save(
                        {
                            "model": accelerator.unwrap_model(vae).state_dict(),
                            "opt": opt.state_dict(),
                            "sched": sched.state_dict(),
                            "step": done,
                        },
                        ckpt,
                    )
            accelerator.print(json.dumps(rec))
            log.write(json.dumps(rec) + "\n")
            log.flush()
    final = accelerator.unwrap_model(vae)
    stats = evaluate(final, cfg.eval_images)
    # SANA's convention: latents / scaling_factor... diffusers multiplies by it on encode; choose it
    # so that scaled latents have unit variance.
    if not cfg.decoder_only:  # a frozen encoder keeps its scale (a teacher was trained with it)
        final.register_to_config(scaling_factor=round(1.0 / stats["latent_std"], 5))
    if accelerator.is_main_process:
        final.save_pretrained(out / "vae", safe_serialization=True)
        (out / "vae_eval.json").write_text(json.dumps(stats, indent=2))
    accelerator.print(json.dumps({"final": stats}))
    return out / "vae"

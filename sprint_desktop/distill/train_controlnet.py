"""Train a Sprint ControlNet on a frozen one-step SANA-Sprint model (the paper's Sec. 3.4).

Reads top to bottom: config -> the frozen base model through our engine (tokenizer, text encoder,
transformer, DC-AE with the model's own text settings) -> a ControlNet copied from its first K
blocks -> loop: (image, caption, sketch) -> x_t at a TrigFlow time from the generator proposal (or
pi/2 with probability ``largest_t_p``) -> the one-step prediction f(x_t, t) with the ControlNet's
residuals -> MSE against the clean latent -> checkpoint + config; evaluation by sketch IoU and
compliance through the engine. Runs unchanged under `accelerate launch`.

Data: ``--data world`` draws Sprint-Shapes scenes and hand-drawn-looking sketches; ``--data DIR``
reads (image, caption) pairs (``x.png`` + ``x.txt``) and computes edge sketches on the fly, so the
same command trains a ControlNet for a real SANA-Sprint model given GPUs and a dataset.

    sprint distill controlnet --model models/sprint-shapes --out runs/controlnet --data world
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.sketch import edges_to_sketch
from ..core.trigflow import SIGMA_D, flow_input_scale, flow_time_from_trig
from .schedule import make_schedule
from .scm import GUIDANCE_EMBED_SCALE, consistency_x0, noisy, time_proposal, with_largest_time


@dataclass
class ControlNetConfig:
    model: str = "models/sprint-shapes"
    out: str = "runs/controlnet"
    data: str = "world"
    num_layers: int = 0  # 0: half of the base model's blocks
    iters: int = 1000
    batch: int = 16
    lr: float = 1e-4
    warmup: int = 0  # learning-rate warm-up steps
    lr_schedule: str = "constant"  # after the warm-up: "constant" or "cosine" (to 0 at iters)
    decay_start: int = 0  # "cosine" holds the rate until this step: a cool-down of a resumed run
    largest_t_p: float = 0.5
    p_mean: float = 0.2
    p_std: float = 1.6
    guidance: float = 4.5
    seed: int = 0
    log_every: int = 25
    eval_every: int = 250
    eval_images: int = 64


class FolderData:
    """(image, caption, edge sketch) triples from ``x.png``/``x.jpg`` + ``x.txt`` files."""

    def __init__(self, folder: Path, size: tuple[int, int]) -> None:
        from PIL import Image

        self.items = []
        for path in sorted(folder.iterdir()):
            if (
                path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
                and path.with_suffix(".txt").is_file()
            ):
                self.items.append((path, path.with_suffix(".txt").read_text(encoding="utf-8").strip()))
        if not self.items:
            raise ValueError(f"no (image, caption) pairs in {folder}: expected x.png with x.txt beside it")
        self.size = size
        self.image = Image

    def batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str], np.ndarray]:
        picks = [self.items[i] for i in rng.integers(len(self.items), size=n)]
        images = []
        for path, _ in picks:
            with self.image.open(path) as im:
                images.append(np.asarray(im.convert("RGB").resize(self.size, self.image.Resampling.LANCZOS)))
        arr = np.stack(images)
        return arr, [c for _, c in picks], np.stack([edges_to_sketch(i) for i in arr])


class WorldData:
    def batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str], np.ndarray]:
        from .world import render, sample_scene, sketch

        scenes = [sample_scene(rng, held_out=False) for _ in range(n)]
        return (
            np.stack([render(s) for s in scenes]),
            [s.caption for s in scenes],
            np.stack([sketch(s, rng) for s in scenes]),
        )


class WithResiduals:
    """The base transformer called with fixed ControlNet residuals (so `trigflow_output` can use it)."""

    def __init__(self, base: Any, residuals: tuple[torch.Tensor, ...]) -> None:
        self.base, self.residuals = base, residuals

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.base(*args, controlnet_block_samples=self.residuals, **kwargs)


def _to_pixels(images: np.ndarray, device: Any, dtype: Any) -> torch.Tensor:
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1).to(device, dtype)


def train(cfg: ControlNetConfig) -> Path:
    from accelerate import Accelerator

    from ..engine.controlnet import SprintControlNetModel
    from ..engine.torch_backend import TorchEngine

    torch.set_flush_denormal(True)
    accelerator = Accelerator()
    device = accelerator.device
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    engine = TorchEngine(cfg.model, device=str(device) if device.type != "mps" else "cpu", dtype="fp32")
    info = engine.load()
    base, vae = engine.transformer, engine.vae
    k = cfg.num_layers or max(1, base.config.num_layers // 2)
    controlnet = SprintControlNetModel.from_transformer(base, k).train()
    opt = torch.optim.AdamW(controlnet.parameters(), lr=cfg.lr, weight_decay=0.0)
    start = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        controlnet.load_state_dict(state["controlnet"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        accelerator.print(f"resumed from step {start}")
    sched = make_schedule(opt, cfg, start)
    controlnet, opt = accelerator.prepare(controlnet, opt)
    data: Any = (
        WorldData()
        if cfg.data == "world"
        else FolderData(Path(cfg.data), (info.default_width, info.default_height))
    )
    rng = np.random.default_rng(cfg.seed + 7919 * start + accelerator.process_index)
    gen = torch.Generator().manual_seed(cfg.seed + start)
    scaling = float(vae.config.scaling_factor)
    log = (out / "log.jsonl").open("a")
    t0 = time.time()
    for step in range(start, cfg.iters):
        images, captions, sketches = data.batch(rng, cfg.batch)
        with torch.no_grad():
            x0 = vae.encode(_to_pixels(images, device, vae.dtype)).latent.float() * scaling * SIGMA_D
            cond = vae.encode(_to_pixels(sketches, device, vae.dtype)).latent.float() * scaling
            encoded = [engine.encode_prompt(c)[:2] for c in captions]
            embeds = torch.cat([e for e, _ in encoded])
            mask = torch.cat([m for _, m in encoded])
        b = x0.shape[0]
        t = with_largest_time(time_proposal(b, cfg.p_mean, cfg.p_std, gen).to(device), cfg.largest_t_p, gen)
        x_t = noisy(x0, t)
        guidance = torch.full((b,), cfg.guidance * GUIDANCE_EMBED_SCALE, device=device)

        # The frozen base model, conditioned by the ControlNet's residuals at its input.
        s = flow_time_from_trig(t)
        x_flow = (x_t / SIGMA_D) * flow_input_scale(s.view(-1, 1, 1, 1))
        residuals = controlnet(x_flow, embeds, s, cond, guidance=guidance, encoder_attention_mask=mask)
        x0_hat = consistency_x0(WithResiduals(base, residuals), x_t, t, embeds, mask, guidance)
        loss = F.mse_loss(x0_hat / SIGMA_D, x0 / SIGMA_D)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        opt.step()
        sched.step()
        done = step + 1
        if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or done == cfg.iters:
            rec: dict[str, Any] = {
                "step": done,
                "loss": round(loss.item(), 5),
                "s_per_it": round((time.time() - t0) / (done - start), 3),
                "lr": float(f"{sched.get_last_lr()[0]:.4g}"),
            }
            if (done % cfg.eval_every == 0 or done == cfg.iters) and cfg.data == "world":
                rec.update(evaluate(engine, accelerator.unwrap_model(controlnet), cfg.eval_images))
            if accelerator.is_main_process and (done % cfg.eval_every == 0 or done == cfg.iters):
                torch.save(
                    {
                        "controlnet": accelerator.unwrap_model(controlnet).state_dict(),
                        "opt": opt.state_dict(),
                        "step": done,
                    },
                    ckpt,
                )
            accelerator.print(json.dumps(rec))
            log.write(json.dumps(rec) + "\n")
            log.flush()
    if accelerator.is_main_process:
        accelerator.unwrap_model(controlnet).save_pretrained(out / "controlnet", safe_serialization=True)
    return out / "controlnet"


@torch.no_grad()
def evaluate(engine: Any, controlnet: Any, n: int, seed: int = 4242) -> dict[str, float]:
    """Sketch IoU and compliance at one step on sketches not seen in training."""
    from ..core.request import GenerateRequest
    from .features import sketch_iou
    from .judge import compliance
    from .world import sample_scene, sketch

    was = engine.controlnet
    engine.controlnet = controlnet.eval()
    rng = np.random.default_rng(seed)
    ious, images, captions = [], [], []
    try:
        for i in range(n):
            scene = sample_scene(rng, held_out=None)
            sk = sketch(scene, rng)
            r = engine.generate(GenerateRequest(scene.caption, steps=1, seed=i, control_image=sk))
            ious.append(sketch_iou(sk, r.image, scene))
            images.append(r.image)
            captions.append(scene.caption)
    finally:
        engine.controlnet = was
        controlnet.train()
    return {
        "sketch_iou": round(float(np.mean(ious)), 3),
        "judge_1step": round(compliance(images, captions)["all"], 3),
    }

"""Distil the Sprint-Shapes teacher into a one-step, step-adaptive student: sCM + LADD (hybrid),
or either alone for the ablations (SANA-Sprint, Sec. 3.2-3.3); with ``--pairs``, a regression of
the first step on the teacher's ODE pairs beside them, or alone (``--mode kd``: `pairs`).

Reads top to bottom: config -> frozen VAE, text encoder and teacher -> student (a copy of the
teacher, or of ``--init``'s weights, optionally deepened: `grow`) + log-variance head +
discriminator heads -> loop: generator step (sCM tangent loss with a forward-mode JVP, and/or the
adversarial loss on re-noised one-step samples, weight 0.5), then a discriminator step (hinge;
misaligned caption pairs, and optionally scenes with one object too many, as fakes), 1:1 ->
evaluation through our own engine at 1/2/4 steps (of the weights' EMA with ``--ema``; the best
kept in ``best/``, a collapse stops the run: `student_guard`) -> checkpoint + config. Runs
unchanged under `accelerate launch`.

    sprint distill student --teacher runs/teacher --vae runs/vae/vae --mode hybrid --out runs/student
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import SprintError
from ..core.trigflow import SIGMA_D
from . import data, grow, pairs, student_guard
from .components import make_tokenizer, require_teacher
from .ladd import (
    Discriminator,
    HeadName,
    adversarial_weight,
    balanced_weight,
    d_hinge_loss,
    g_hinge_loss,
)
from .package import with_guidance_embedding
from .sampling import encode_text
from .schedule import make_schedule
from .scm import (
    GUIDANCE_EMBED_SCALE,
    LogVarHead,
    consistency_x0,
    noisy,
    normalize_tangent,
    sample_guidance,
    scm_loss,
    scm_tangent,
    student_jvp,
    teacher_dxdt,
    time_proposal,
    trigflow_output,
    warmup_ratio,
    with_largest_time,
)
from .train_teacher import StopRequest, ema_decay, save_checkpoint, update_ema

MODES = ("scm", "ladd", "hybrid", "kd")  # kd: the teacher's ODE pairs alone (`pairs`)


@dataclass
class StudentConfig:
    teacher: str = "runs/teacher"
    vae: str = "runs/vae/vae"
    out: str = "runs/student"
    mode: str = "hybrid"
    iters: int = 600
    batch: int = 32
    lr: float = 5e-5
    d_lr: float = 1e-4
    tangent_warmup: int = 100
    adv_weight: float = 0.5
    adv_warmup: int = 0  # hybrid: steps over which the LADD weight rises from 0 (0: fixed, as the paper)
    largest_t_p: float = 0.5
    g_p_mean: float = 0.2
    g_p_std: float = 1.6
    d_p_mean: float = -0.6
    d_p_std: float = 1.0
    disc_layers: tuple[int, ...] = (2, 5, 7)
    disc_head: HeadName = "conv"  # "set": a head that sees all tokens at once (ladd.SetHead)
    # hybrid: scale the LADD weight by |grad sCM| / |grad LADD| on the student's last layer
    adv_balance: bool = False
    misaligned_p: float = 0.25
    # LADD: this share of the batch as extra fakes, real scenes with one object too many
    extra_object_p: float = 0.0
    seed: int = 0
    log_every: int = 25
    eval_every: int = 200
    eval_images: int = 96
    # captions of the in-run judge, which picks best/: a seed apart from CARD_SEED, so the kept
    # weights are not chosen on the captions the model card reports (before session 9: CARD_SEED)
    eval_seed: int = 998
    cache: int = 0  # reuse the teacher's cache of encoded scenes (0: fresh scenes every step)
    # a regex over the student's parameter names: those matching keep the teacher's values
    # (e.g. "attn2.to_v.bias", which grew most before session 8's collapse)
    freeze: str = ""
    # start from this student transformer folder (e.g. a run's best/transformer) instead of a copy
    # of the teacher: a cool-down of a finished run
    init: str = ""
    # > 0: an exponential moving average of the student's weights (decay with warm-up, as the
    # teacher's), judged, kept as best/ and saved in place of the raw weights
    ema: float = 0.0
    # > 0: an identity block inserted after every this many blocks of the starting weights
    # (`grow.deeper`): a student deeper than its teacher, equal to it at the start
    deepen: int = 0
    warmup: int = 0  # learning-rate warm-up steps
    lr_schedule: str = "constant"  # after the warm-up: "constant" or "cosine" (to 0 at iters)
    decay_start: int = 0  # "cosine" holds the rate until this step, then decays
    # > 0: this many (noise, teacher sample) pairs, cached beside --out, and the one-step
    # regression on them (`pairs.kd_loss`) added to the loss with weight pair_weight
    pairs: int = 0
    pair_weight: float = 1.0
    pair_steps: int = 20  # the teacher's Euler steps per pair
    # "judge": only the pairs whose teacher sample passes the judge (the teacher's failures are not
    # taught; the judgement is cached beside each shard); "": all
    pair_filter: str = ""
    pair_balance: bool = False  # draw the pairs of each caption family equally often (`pairs.family_balance`)
    pairs_first: int = 0  # the pairs are shards pairs_first .. pairs/1,000 (earlier ones left out)
    # > 0: more pairs, shards extra_first .. extra_pairs/1,000 of the captions of extra_family alone
    # (its own stream of shards, `pairs.FAMILY_STREAMS`; "": a second range of the every-family
    # stream, as two builders leave it), filtered as the others
    extra_pairs: int = 0
    extra_family: str = "relation"
    extra_first: int = 0


def load_frozen(cfg: StudentConfig, device: Any) -> tuple[Any, Any, Any, Any]:
    from diffusers import AutoencoderDC
    from transformers import Gemma2Model

    vae = AutoencoderDC.from_pretrained(cfg.vae).to(device).eval().requires_grad_(False)
    text_encoder = (
        Gemma2Model.from_pretrained(Path(cfg.teacher) / "text_encoder")
        .to(device)
        .eval()
        .requires_grad_(False)
    )
    teacher = pairs.load_transformer(Path(cfg.teacher) / "transformer").to(device)
    return vae, text_encoder, teacher, make_tokenizer()


def build_engine(student: Any, vae: Any, text_encoder: Any, tokenizer: Any) -> Any:
    """Our inference engine over these components, so evaluation is exactly what the app runs.

    The engine gets a copy of the student: setting up an engine puts modules in eval mode without
    gradients, which must not happen to the model being trained."""
    from diffusers import SanaSprintPipeline, SCMScheduler

    from ..engine.torch_backend import TorchEngine
    from .components import MAX_CAPTION_TOKENS

    device = str(next(student.parameters()).device)
    pipe = SanaSprintPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=copy.deepcopy(student),
        scheduler=SCMScheduler(sigma_data=SIGMA_D),
    )
    return TorchEngine.from_pipeline(
        pipe,
        name="sprint-shapes",
        device=device,
        dtype="fp32",
        complex_human_instruction=False,
        max_sequence_length=MAX_CAPTION_TOKENS,
    )


def evaluate_engine(
    engine: Any, captions: list[str], steps: int, guidance: float = 4.5
) -> tuple[dict[str, Any], float, list[np.ndarray]]:
    """Compliance of ``engine`` images for ``captions`` at ``steps``, median ms per image, and the
    images."""
    from ..core.request import GenerateRequest
    from .judge import compliance

    images, ms = [], []
    for i, caption in enumerate(captions):
        r = engine.generate(GenerateRequest(caption, steps=steps, seed=i, guidance=guidance))
        images.append(r.image)
        ms.append(r.timings.total_ms)
    scores = compliance(images, captions)
    return scores, float(np.median(ms)), images


CARD_SEED = 999  # the captions `sprint evaluate` reports on (the model card's table)


def eval_scenes(n: int, seed: int = CARD_SEED) -> list[Any]:
    """The evaluation scenes: half with seen colour-shape pairs, half with a held-out one; their
    renders are the real images the distribution distance compares against."""
    from .world import sample_scene

    rng = np.random.default_rng(seed)
    half = n // 2
    return [sample_scene(rng, held_out=False) for _ in range(half)] + [
        sample_scene(rng, held_out=True) for _ in range(n - half)
    ]


def eval_captions(n: int, seed: int = CARD_SEED) -> list[str]:
    return [s.caption for s in eval_scenes(n, seed)]


def keep_best(
    accelerator: Any, student: Any, out: Path, best: student_guard.Best, rec: dict[str, Any], step: int
) -> bool:
    """Save the student as ``out/best`` when ``rec``'s evaluation is its best so far (``best`` is
    updated); True when the evaluation is a collapse (`student_guard.verdict`)."""
    verdict = student_guard.verdict(best, rec)
    if verdict == "best":
        best.step, best.score = step, float(student_guard.score(rec) or 0.0)
        if accelerator.is_main_process:
            accelerator.unwrap_model(student).save_pretrained(
                out / student_guard.BEST / "transformer", safe_serialization=True
            )
            best.save(out)
    rec["best_step"] = best.step
    return verdict == "collapse"


def freeze_matching(student: Any, pattern: str) -> Any:
    """Stop training the parameters whose names match ``pattern`` (a regex; "" freezes nothing)."""
    if not pattern:
        return student
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise SprintError(f"--freeze {pattern!r} is not a regular expression: {exc}") from None
    matched = [p for n, p in student.named_parameters() if rx.search(n)]
    if not matched:
        raise SprintError(f"--freeze {pattern!r} matches no parameter of the student")
    for p in matched:
        p.requires_grad_(False)
    return student


def make_student(cfg: StudentConfig, teacher: Any) -> Any:
    """The trained copy: the teacher's weights, or ``cfg.init``'s (a student to go on from),
    deepened by ``cfg.deepen``, with ``cfg.freeze``'s parameters frozen."""
    if not cfg.init:
        student = copy.deepcopy(teacher)
    else:
        from diffusers import SanaTransformer2DModel

        if not (Path(cfg.init) / "config.json").exists():
            raise SprintError(f"--init {cfg.init}: no transformer there (config.json is missing)")
        student = with_guidance_embedding(SanaTransformer2DModel.from_pretrained(cfg.init)).float()
        differ = other_shape(student.config, teacher.config)
        if differ:
            raise SprintError(
                f"--init {cfg.init} differs from the teacher {cfg.teacher} in {', '.join(differ)}"
            )
        student = student.to(next(teacher.parameters()).device)
    if cfg.deepen:
        student = grow.deeper(student, cfg.deepen)
    return freeze_matching(student.requires_grad_(True).train(), cfg.freeze)


def other_shape(config: Any, teacher: Any) -> list[str]:
    """The shape settings in which a student's config differs from its teacher's; the depth may
    differ (`grow.deeper`)."""
    keys = ("in_channels", "patch_size", "num_attention_heads", "attention_head_dim", "caption_channels")
    return [k for k in keys if config[k] != teacher[k]]


def _pair_streams(cfg: StudentConfig) -> list[tuple[str, int, int]]:
    """(family, pairs up to, first shard) of each stream the student learns, checked: a range
    that holds no shard is a one-line error."""
    streams = [("", cfg.pairs, cfg.pairs_first), (cfg.extra_family, cfg.extra_pairs, cfg.extra_first)]
    for (_, n, first), flags in zip(
        streams, (("--pairs", "--pairs-first"), ("--extra-pairs", "--extra-first")), strict=True
    ):
        if n > 0 and n <= first * pairs.SHARD:
            raise SprintError(
                f"{flags[0]} {n} ends before shard {flags[1]} {first} starts: give {flags[0]} above "
                f"{first * pairs.SHARD} (shards of {pairs.SHARD:,} pairs)"
            )
    return [s for s in streams if s[1] > 0]


def load_pairs(cfg: StudentConfig, runs: Path, frozen: tuple[Any, Any, Any], vae: Any) -> pairs.PairCache:
    """The teacher's pairs the student learns: shards ``pairs_first`` .. of ``pairs`` and, with
    ``extra_pairs``, shards ``extra_first`` .. of the ``extra_family`` stream; with ``pair_filter``
    judge, those that pass."""
    judged_by = (vae, cfg.vae) if cfg.pair_filter == "judge" else None
    streams = _pair_streams(cfg)
    cache = pairs.concat(
        [
            pairs.load_or_build(
                runs, cfg.teacher, *frozen, n, cfg.seed, cfg.pair_steps, first, judged_by, family
            )
            for family, n, first in streams
        ]
    )
    if len(cache) == 0:
        raise SprintError(
            f"no pair passes the judge: the teacher's {sum(n - first * pairs.SHARD for _, n, first in streams)} "
            "samples show none of their captions"
        )
    return cache


def train(cfg: StudentConfig) -> Path:
    from accelerate import Accelerator

    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
    if cfg.pair_filter not in ("", "judge"):
        raise SprintError(f"--pair-filter must be 'judge' or empty, got {cfg.pair_filter!r}")
    if cfg.mode == "kd" and cfg.pairs <= 0:
        raise SprintError("--mode kd trains on the teacher's pairs alone: give --pairs N (e.g. 20000)")
    if cfg.extra_pairs > 0 and cfg.pairs <= 0:
        raise SprintError("--extra-pairs adds to the teacher's pairs: give --pairs N too")
    _pair_streams(cfg)
    require_teacher(cfg.teacher)
    torch.set_flush_denormal(True)
    accelerator = Accelerator()
    device = accelerator.device
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    use_scm, use_adv = cfg.mode in ("scm", "hybrid"), cfg.mode in ("ladd", "hybrid")

    vae, text_encoder, teacher, tokenizer = load_frozen(cfg, device)
    student = make_student(cfg, teacher)
    ema = copy.deepcopy(student).requires_grad_(False).eval() if cfg.ema > 0 else None
    logvar = LogVarHead().to(device)
    width = teacher.config.num_attention_heads * teacher.config.attention_head_dim
    disc = Discriminator(width, text_encoder.config.hidden_size, tuple(cfg.disc_layers), cfg.disc_head)
    disc = disc.to(device)
    trained = [p for p in student.parameters() if p.requires_grad]
    opt_g = torch.optim.AdamW([*trained, *logvar.parameters()], lr=cfg.lr, weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.d_lr, betas=(0.0, 0.99))
    start = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        student.load_state_dict(state["student"])
        logvar.load_state_dict(state["logvar"])
        try:
            disc.load_state_dict(state["disc"])
        except RuntimeError as exc:
            raise SprintError(
                f"{ckpt} was trained with another discriminator: resume with its --disc-head and "
                f"--disc-layers (config.json beside it) or start a new --out"
            ) from exc
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        if ema is not None:
            ema.load_state_dict(state.get("ema", state["student"]))
        start = int(state["step"])
        accelerator.print(f"resumed from step {start}")
    sched = make_schedule(opt_g, cfg, start)
    student, logvar, disc, opt_g, opt_d = accelerator.prepare(student, logvar, disc, opt_g, opt_d)
    rng = np.random.default_rng(cfg.seed + 7919 * start + accelerator.process_index)
    gen = torch.Generator().manual_seed(cfg.seed + start)
    source = data.TrainingLatents(vae, cfg.vae, cfg.cache, cfg.seed) if use_scm or use_adv else None
    pair_cache = (
        load_pairs(cfg, out.parent, (teacher, tokenizer, text_encoder), vae) if cfg.pairs > 0 else None
    )
    pair_p = pairs.family_balance(pair_cache) if pair_cache is not None and cfg.pair_balance else None
    log = (out / "log.jsonl").open("a")
    best = student_guard.Best.load(out)
    collapsed = False
    stop = StopRequest()
    t0 = time.time()
    shown = ema if ema is not None else accelerator.unwrap_model(student)  # judged, kept, saved
    for step in range(start, cfg.iters):
        rec: dict[str, Any] = {"step": step + 1}
        b = cfg.batch
        if source is not None:
            # ---- data for sCM / LADD: real latents in TrigFlow units (x0 has std sigma_d),
            # captions, guidance (the teacher's pairs bring their own)
            latents, captions = source.batch(rng, b)
            x0 = latents * SIGMA_D
            with torch.no_grad():
                cond = encode_text(tokenizer, text_encoder, captions, device)
                uncond = encode_text(tokenizer, text_encoder, [""] * b, device)
            w = sample_guidance(b, gen).to(device)
            g_embed = w * GUIDANCE_EMBED_SCALE

        # ---- generator step
        loss = torch.zeros((), device=device)
        if use_scm:
            t = time_proposal(b, cfg.g_p_mean, cfg.g_p_std, gen).to(device)
            x_t = noisy(x0, t)
            dxdt = teacher_dxdt(teacher, x_t, t, cond, uncond, w)
            F_minus, dF = student_jvp(accelerator.unwrap_model(student), x_t, t, dxdt, *cond, g_embed)
            g_raw = scm_tangent(F_minus, dF, dxdt, x_t, t, r=warmup_ratio(step + 1, cfg.tangent_warmup))
            g = normalize_tangent(g_raw)
            F_theta = trigflow_output(student, x_t / SIGMA_D, t, *cond, g_embed)
            lv = logvar(t)
            l_scm = scm_loss(F_theta, F_minus, g, lv)
            loss = loss + l_scm
            rec["scm"] = round(l_scm.item(), 5)
            # the loss mostly follows the log-variance head; these show what the student does
            rec["tangent"] = round(g_raw.flatten(1).norm(dim=1).mean().item(), 4)
            rec["logvar"] = round(lv.mean().item(), 4)
        if use_adv:
            t_g = with_largest_time(
                time_proposal(b, cfg.g_p_mean, cfg.g_p_std, gen).to(device), cfg.largest_t_p, gen
            )
            x0_hat = consistency_x0(student, noisy(x0, t_g), t_g, *cond, g_embed)
            t_d = time_proposal(b, cfg.d_p_mean, cfg.d_p_std, gen).to(device)
            fake_t = noisy(x0_hat, t_d)  # the student's sample, re-noised for the discriminator
            l_adv = g_hinge_loss(disc(teacher, fake_t, t_d, *cond, SIGMA_D))
            weight = adversarial_weight(step + 1, cfg.adv_weight, cfg.adv_warmup) if use_scm else 1.0
            if use_scm and cfg.adv_balance:
                ratio = balanced_weight(
                    l_scm, l_adv, accelerator.unwrap_model(student).proj_out.weight
                ).item()
                weight = weight * ratio
                rec["grad_ratio"] = round(ratio, 5)
            loss = loss + weight * l_adv
            rec["g_adv"] = round(l_adv.item(), 5)
            rec["adv_w"] = float(f"{weight:.4g}")
        if pair_cache is not None:
            z, target, kd_captions, kd_w = pair_cache.batch(rng, b, pair_p)
            with torch.no_grad():
                kd_cond = encode_text(tokenizer, text_encoder, kd_captions, device)
            l_kd = pairs.kd_loss(student, z.to(device), target.to(device), kd_cond, kd_w.to(device))
            loss = loss + cfg.pair_weight * l_kd
            rec["kd"] = round(l_kd.item(), 5)
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(student.parameters(), 1.0)
        opt_g.step()
        sched.step()
        if ema is not None:
            update_ema(ema, accelerator.unwrap_model(student), ema_decay(step, cfg.ema))

        # ---- discriminator step (1:1), with misaligned (real image, wrong caption) pairs as fakes
        if use_adv:
            with torch.no_grad():
                real_t = noisy(x0, t_d)
                fake_t = fake_t.detach()
            n_mis = max(1, int(cfg.misaligned_p * b))
            perm = torch.roll(torch.arange(b), 1)[:n_mis]
            mis_cond = (cond[0][perm], cond[1][perm])
            d_real = disc(teacher, real_t, t_d, *cond, SIGMA_D)
            d_fake = disc(teacher, fake_t, t_d, *cond, SIGMA_D)
            d_mis = disc(teacher, real_t[:n_mis], t_d[:n_mis], *mis_cond, SIGMA_D)
            fakes = [d_fake, d_mis]
            if cfg.extra_object_p > 0:  # the count is part of the caption: one object too many is fake
                n_extra = max(1, int(cfg.extra_object_p * b))
                x_extra, extra_captions = data.extra_object_latents(vae, rng, n_extra)
                with torch.no_grad():
                    extra_cond = encode_text(tokenizer, text_encoder, extra_captions, device)
                    extra_t = noisy(x_extra * SIGMA_D, t_d[:n_extra])
                fakes.append(disc(teacher, extra_t, t_d[:n_extra], *extra_cond, SIGMA_D))
            l_d = d_hinge_loss(d_real, torch.cat(fakes))
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(l_d)
            opt_d.step()
            rec["d"] = round(l_d.item(), 5)

        done = step + 1
        last = done == cfg.iters
        if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or last or stop.asked:
            rec["s_per_it"] = round((time.time() - t0) / (done - start), 3)
            rec["lr"] = float(f"{sched.get_last_lr()[0]:.4g}")
            if done % cfg.eval_every == 0 or last:
                engine = build_engine(shown, vae, text_encoder, tokenizer)
                for n in (1, 2, 4):
                    scores, _, _ = evaluate_engine(engine, eval_captions(cfg.eval_images, cfg.eval_seed), n)
                    rec[f"judge_{n}step"] = round(scores["all"], 3)
                collapsed = keep_best(accelerator, shown, out, best, rec, done)
            if (
                (done % cfg.eval_every == 0 or last or stop.asked)
                and accelerator.is_main_process
                and not collapsed
            ):
                save_checkpoint(
                    ckpt,
                    {
                        "student": accelerator.unwrap_model(student).state_dict(),
                        "logvar": accelerator.unwrap_model(logvar).state_dict(),
                        "disc": accelerator.unwrap_model(disc).state_dict(),
                        "opt_g": opt_g.state_dict(),
                        "opt_d": opt_d.state_dict(),
                        "step": done,
                        **({"ema": ema.state_dict()} if ema is not None else {}),
                    },
                )
            accelerator.print(json.dumps(rec))
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if stop.asked or collapsed:  # SIGTERM / SIGINT: checkpointed above, resumes with the same command
            break
    if collapsed:
        raise SprintError(student_guard.collapse_message(out, best, done))
    if accelerator.is_main_process:
        shown.save_pretrained(out / "transformer", safe_serialization=True)
    return out

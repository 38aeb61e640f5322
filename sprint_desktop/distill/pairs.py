"""Knowledge distillation on the teacher's ODE pairs (Luhman & Luhman 2021, arXiv 2101.02388; the
same regression distils rectified flow to one step, Liu et al. 2022, arXiv 2209.03003, Sec. 2.3):
the one-step student learns the map noise -> the teacher's sample from that noise.

    z ~ N(0, I);  x_hat = ODE_teacher(z, c, w)      (20 Euler steps, classifier-free guidance w)
    L_kd = || f_theta(sigma_d z, T_MAX, c, w) / sigma_d - x_hat ||^2

Each target is a function of its noise, so the regression does not average over modes the way
denoising does, and it judges exactly the step the app takes first (sCM only reaches it through
consistency along the whole trajectory). The pairs are built once, in shards beside the runs (key:
the teacher's weights, seed, steps), by the student run or ahead of it (`sprint distill pairs`), and
sampled every step.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import SprintError
from ..core.trigflow import SIGMA_D, T_MAX
from .data import load_keyed, save_keyed, vae_fingerprint
from .sampling import euler_sample
from .scm import GUIDANCE_CHOICES, GUIDANCE_EMBED_SCALE, consistency_x0
from .world import FAMILIES, sample_scene


@dataclass(frozen=True)
class PairCache:
    """Noise (N, C, h, w), the teacher's samples from it (scaled latents), captions, guidance (N,)."""

    noise: torch.Tensor
    target: torch.Tensor
    captions: list[str]
    guidance: torch.Tensor

    def __len__(self) -> int:
        return len(self.captions)

    def batch(
        self, rng: np.random.Generator, n: int, p: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor]:
        """``n`` pairs drawn with replacement, uniformly or with probabilities ``p``."""
        draw = rng.integers(0, len(self), size=n) if p is None else rng.choice(len(self), size=n, p=p)
        idx = torch.from_numpy(draw)
        return self.noise[idx], self.target[idx], [self.captions[i] for i in idx.tolist()], self.guidance[idx]


def build(
    teacher: Any,
    tokenizer: Any,
    text_encoder: Any,
    n: int,
    seed: int,
    steps: int,
    chunk: int = 64,
    batch: int = 64,
    family: str = "",
) -> PairCache:
    """``n`` pairs from training captions (no held-out pair; of one caption ``family`` when given),
    guidance drawn from the student's choices, one value per ``chunk`` of pairs; the teacher samples
    ``batch`` pairs at a time (a GPU takes thousands), which leaves the pairs as they are."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    shape = (teacher.config.in_channels, teacher.config.sample_size, teacher.config.sample_size)
    noise, captions, guidance = [], [], []
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        captions += [sample_scene(rng, family or None, held_out=False).caption for _ in range(k)]
        guidance.append(torch.full((k,), float(GUIDANCE_CHOICES[int(rng.integers(len(GUIDANCE_CHOICES)))])))
        noise.append(torch.randn((k, *shape), generator=gen))
    z, w = torch.cat(noise), torch.cat(guidance)
    target = [
        euler_sample(
            teacher,
            tokenizer,
            text_encoder,
            captions[i : i + batch],
            steps,
            w[i : i + batch],
            0,
            noise=z[i : i + batch],
        )
        .float()
        .cpu()
        for i in range(0, n, batch)
    ]
    return PairCache(z, torch.cat(target), captions, w)


SHARD = 1000
"""Pairs per file: a cache grows shard by shard, several builders can share the work (`train`), and
a stopped build loses at most one shard."""


FAMILY_STREAMS = ("", *FAMILIES)
"""The pair streams: "" draws every caption family, a family's name only that family's captions
(more pairs where the teacher passes the judge least, relations: 29%)."""


def shard_paths(
    runs: str | Path, teacher_dir: str | Path, seed: int, steps: int, shards: range, family: str = ""
) -> list[Path]:
    """Where the ``shards`` of a teacher's pairs live: under ``runs``, named by the teacher's
    weights (hashed once for all of them) and the stream's ``family``."""
    key = vae_fingerprint(Path(teacher_dir) / "transformer")
    stream = f"-{family}" if family else ""
    return [Path(runs) / f"pairs-{key}-seed{seed}-{steps}steps{stream}-{k:04d}.pt" for k in shards]


def shard_path(runs: str | Path, teacher_dir: str | Path, seed: int, steps: int, k: int) -> Path:
    """Where shard ``k`` of a teacher's pairs lives (`shard_paths`)."""
    return shard_paths(runs, teacher_dir, seed, steps, range(k, k + 1))[0]


def shard_seed(seed: int, k: int, family: str) -> int:
    """The seed of shard ``k`` of a stream: the family streams' noise and captions are their own,
    not those of the shard ``k`` of every family."""
    base = seed * 1_000_003 + k
    return base if not family else base + 7_000_000_019 * (1 + FAMILIES.index(family))


def load_or_build_shard(
    path: Path,
    teacher: Any,
    tokenizer: Any,
    text_encoder: Any,
    seed: int,
    steps: int,
    k: int,
    batch: int = 64,
    family: str = "",
) -> PairCache:
    """Shard ``k`` of the ``family`` stream at ``path`` when made with the same seed and steps; else
    build it (the teacher sampling ``batch`` pairs at a time) and save it."""
    key: dict[str, Any] = {"seed": seed, "steps": steps, "shard": k, "size": SHARD}
    if family:
        key["family"] = family
    state = load_keyed(path, key)
    if state is not None:
        return PairCache(state["noise"], state["target"], json.loads(state["captions"]), state["guidance"])
    cache = build(
        teacher,
        tokenizer,
        text_encoder,
        SHARD,
        shard_seed(seed, k, family),
        steps,
        batch=batch,
        family=family,
    )
    save_keyed(
        path,
        key,
        {
            "noise": cache.noise,
            "target": cache.target,
            "captions": json.dumps(cache.captions),
            "guidance": cache.guidance,
        },
    )
    return cache


def load_or_build(
    runs: str | Path,
    teacher_dir: str | Path,
    teacher: Any,
    tokenizer: Any,
    text_encoder: Any,
    n: int,
    seed: int,
    steps: int,
    first: int = 0,
    judged_by: tuple[Any, str | Path] | None = None,
    family: str = "",
) -> PairCache:
    """The first ``n`` pairs of a teacher's ``family`` stream (`FAMILY_STREAMS`; shards ``first``
    .. as many as ``n`` needs), each shard loaded when cached, else built and saved; with
    ``judged_by`` (a VAE and its folder) only the pairs whose target passes the judge
    (`load_or_judge`)."""
    if family not in FAMILY_STREAMS:
        raise SprintError(f"no pair stream {family!r}: choose one of {', '.join(FAMILIES)} or '' (all)")
    ks = range(first, math.ceil(n / SHARD))
    vae_key = vae_fingerprint(judged_by[1]) if judged_by is not None else ""
    shards = []
    for k, path in zip(ks, shard_paths(runs, teacher_dir, seed, steps, ks, family), strict=True):
        cache = load_or_build_shard(path, teacher, tokenizer, text_encoder, seed, steps, k, family=family)
        keep = torch.arange(len(cache)) < n - k * SHARD  # the last shard may hold more than n needs
        if judged_by is not None:  # the whole shard, so that its verdicts are the same for any n
            keep &= load_or_judge(path, cache, judged_by[0], vae_key)
        shards.append(subset(cache, keep))
    if not shards:
        raise SprintError(f"no pairs to load: {n} pairs end before shard {first}")
    return concat(shards)


def concat(caches: list[PairCache]) -> PairCache:
    """The pairs of ``caches``, one after the other."""
    return PairCache(
        torch.cat([c.noise for c in caches]),
        torch.cat([c.target for c in caches]),
        [cap for c in caches for cap in c.captions],
        torch.cat([c.guidance for c in caches]),
    )


def subset(cache: PairCache, keep: torch.Tensor) -> PairCache:
    """The pairs where the boolean ``keep`` (N,) is true."""
    idx = torch.nonzero(keep).flatten()
    return PairCache(
        cache.noise[idx], cache.target[idx], [cache.captions[i] for i in idx.tolist()], cache.guidance[idx]
    )


def family_balance(cache: PairCache) -> np.ndarray:
    """Probabilities that draw each caption family (single, two, relation, counting) equally often:
    after the judge's filter the families are uneven (the teacher passes 92% of single objects and
    29% of relations), and uniform draws would teach relations least."""
    from .judge import parse_caption

    families = [parse_caption(c).family for c in cache.captions]
    counts = Counter(families)
    p = np.array([1.0 / (counts[f] * len(counts)) for f in families])
    return p / p.sum()


def decode(vae: Any, latents: torch.Tensor, chunk: int = 64) -> np.ndarray:
    """Scaled latents (N, C, h, w) as uint8 images (N, H, W, 3)."""
    from .train_vae import to_uint8

    device = next(vae.parameters()).device
    with torch.no_grad():
        return np.concatenate(
            [
                to_uint8(vae.decode(latents[i : i + chunk].to(device) / vae.config.scaling_factor).sample)
                for i in range(0, len(latents), chunk)
            ]
        )


def passing(cache: PairCache, vae: Any, pool: Any = None) -> torch.Tensor:
    """Whether each pair's target, decoded, shows its caption (the project's judge, `judge.judge`;
    ~3 ms an image on one core, so a GPU machine judges in a ``pool`` of processes)."""
    from .judge import judge

    work = list(zip(decode(vae, cache.target), cache.captions, strict=True))
    return torch.tensor(pool.starmap(judge, work, chunksize=64) if pool else [judge(*w) for w in work])


def load_or_judge(shard: Path, cache: PairCache, vae: Any, vae_key: str, pool: Any = None) -> torch.Tensor:
    """`passing` for the shard at ``shard``, saved beside it (key: the shard's pairs and the VAE's
    `vae_fingerprint`)."""
    path = shard.with_name(f"{shard.stem}-judged-{vae_key}.pt")
    key = {"shard": shard.name, "n": len(cache), "vae": vae_key, "first": cache.captions[:1]}
    state = load_keyed(path, key)
    if state is not None:
        return state["passing"]
    ok = passing(cache, vae, pool)
    save_keyed(path, key, {"passing": ok})
    return ok


@dataclass
class PairsConfig:
    teacher: str = "models/sprint-shapes-teacher"
    out: str = "runs"  # the folder the students' --out folders are in: they find the pairs there
    pairs: int = 6000
    first: int = 0  # build from this shard on (a second builder beside the first: e.g. 6 of 12)
    seed: int = 0  # the students' --seed
    steps: int = 20
    family: str = ""  # "": captions of every family; a family's name: that family's stream alone


def train(cfg: PairsConfig) -> Path:
    """Build the missing shards of ``cfg.pairs`` pairs (`sprint distill pairs`)."""
    teacher, tokenizer, text_encoder = load_teacher(cfg.teacher)
    load_or_build(
        cfg.out,
        cfg.teacher,
        teacher,
        tokenizer,
        text_encoder,
        cfg.pairs,
        cfg.seed,
        cfg.steps,
        cfg.first,
        family=cfg.family,
    )
    return Path(cfg.out)


def load_transformer(folder: str | Path) -> Any:
    """A teacher's or student's transformer, frozen, with the guidance branch the students use."""
    from diffusers import SanaTransformer2DModel

    from .package import with_guidance_embedding

    model = with_guidance_embedding(SanaTransformer2DModel.from_pretrained(folder))
    return model.float().eval().requires_grad_(False)


def load_teacher(folder: str | Path) -> tuple[Any, Any, Any]:
    """The teacher at ``folder`` (a run or a packaged folder): transformer, tokenizer, text encoder."""
    from transformers import Gemma2Model

    from .components import make_tokenizer, require_teacher

    text_encoder = Gemma2Model.from_pretrained(require_teacher(folder) / "text_encoder").eval()
    return load_transformer(Path(folder) / "transformer"), make_tokenizer(), text_encoder


def first_step(
    student: Any, noise: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor], guidance: torch.Tensor
) -> torch.Tensor:
    """The student's one step from unit ``noise`` at the engine's first time, T_MAX, in
    scaled-latent units (the teacher's samples' units)."""
    t = torch.full((noise.shape[0],), T_MAX, device=noise.device)
    return consistency_x0(student, SIGMA_D * noise, t, *cond, guidance * GUIDANCE_EMBED_SCALE) / SIGMA_D


def kd_loss(
    student: Any,
    noise: torch.Tensor,
    target: torch.Tensor,
    cond: tuple[torch.Tensor, torch.Tensor],
    guidance: torch.Tensor,
) -> torch.Tensor:
    """L_kd: the student's first step against the teacher's sample from the same noise."""
    return torch.mean((first_step(student, noise, cond, guidance) - target) ** 2)


def first_steps(
    student: Any, cache: PairCache, tokenizer: Any, text_encoder: Any, chunk: int = 64
) -> torch.Tensor:
    """The student's one-step latents from each pair's noise, caption and guidance (the engine's
    first step), in the targets' units."""
    from .sampling import encode_text

    device = next(student.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(cache), chunk):
            z, w = cache.noise[i : i + chunk], cache.guidance[i : i + chunk]
            cond = encode_text(tokenizer, text_encoder, cache.captions[i : i + chunk], device)
            out.append(first_step(student, z.to(device), cond, w.to(device)).cpu())
    return torch.cat(out)


def fit_rows(cache: PairCache, vae: Any, latents: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """For the targets and each named set of latents: the mean squared error to the targets and the
    judge's compliance of the decoded images with the pairs' captions."""
    from .judge import compliance

    return [
        {
            "name": name,
            "mse": round(float(((x - cache.target) ** 2).mean()), 4),
            "judge": round(float(compliance(list(decode(vae, x)), cache.captions)["all"]), 3),
        }
        for name, x in {"teacher (targets)": cache.target, **latents}.items()
    ]


def family_rows(every: PairCache, passing: PairCache) -> list[dict[str, Any]]:
    """Per caption family and in all: pairs, those whose target passes the judge, their rate, and
    the family's share of the passing pairs (what a ``--pair-filter judge`` student learns from)."""
    from .judge import parse_caption

    n = Counter(parse_caption(c).family for c in every.captions)
    ok = Counter(parse_caption(c).family for c in passing.captions)
    counts = [*((f, n[f], ok[f]) for f in sorted(n)), ("all", len(every), len(passing))]
    return [
        {
            "family": family,
            "pairs": pairs,
            "passing": passed,
            "rate": round(passed / max(pairs, 1), 3),
            "share": round(passed / max(len(passing), 1), 3),
        }
        for family, pairs, passed in counts
    ]


def main(argv: list[str] | None = None) -> None:
    """``python -m sprint_desktop.distill.pairs fit``: how closely students' first steps fit a
    teacher's pairs (shards ``--first`` .. of ``--pairs``; shards a student did not train on measure
    the fit on new pairs), and how the decoded images pass the judge. ``... judged``: how many of
    the teacher's own samples pass the judge, per caption family (the verdicts cached beside the
    shards, as ``--pair-filter judge`` uses them)."""
    import argparse

    from diffusers import AutoencoderDC

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--teacher", default="models/sprint-shapes-teacher")
    common.add_argument("--runs", default="runs")
    common.add_argument("--pairs", type=int, default=1000)
    common.add_argument("--first", type=int, default=0)
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--steps", type=int, default=20)
    common.add_argument("--family", default="", help="a family's own stream of pairs ('': every family)")
    parser = argparse.ArgumentParser(prog="python -m sprint_desktop.distill.pairs")
    sub = parser.add_subparsers(dest="cmd", required=True)
    fit = sub.add_parser(
        "fit", parents=[common], help="mean squared error and judge of students' first steps on pairs"
    )
    fit.add_argument("students", nargs="*", help="student transformer folders")
    fit.add_argument("--vae", default="runs/vae-dec/vae", help="the decoder the images are judged through")
    judged = sub.add_parser("judged", parents=[common], help="the teacher's samples that pass the judge")
    judged.add_argument("--vae", default="runs/vae/vae", help="the students' --vae (the verdicts' key)")
    args = parser.parse_args(argv)
    teacher, tokenizer, text_encoder = load_teacher(args.teacher)
    vae = AutoencoderDC.from_pretrained(args.vae).eval()
    shared = (
        args.runs,
        args.teacher,
        teacher,
        tokenizer,
        text_encoder,
        args.pairs,
        args.seed,
        args.steps,
        args.first,
    )
    cache = load_or_build(*shared, family=args.family)
    print(f"{len(cache)} pairs (shards {args.first} on)")
    if args.cmd == "judged":
        print("| family | pairs | passing | rate | share of the passing |")
        for r in family_rows(cache, load_or_build(*shared, judged_by=(vae, args.vae), family=args.family)):
            print(f"| {r['family']} | {r['pairs']} | {r['passing']} | {r['rate']} | {r['share']} |")
        return
    latents = {s: first_steps(load_transformer(s), cache, tokenizer, text_encoder) for s in args.students}
    for row in fit_rows(cache, vae, latents):
        print(f"| {row['name']} | {row['mse']} | {row['judge']} |")


if __name__ == "__main__":
    main()

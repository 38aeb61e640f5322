"""The teacher recipe sweep (issue "Sprint-Shapes reaches its targets", step 1): learning curves of
candidate recipes at an equal budget of training CPU minutes, and their plot.

Each candidate is `train_teacher.train` with a few config fields changed; its log rows carry the
CPU minutes spent on training (evaluation excluded), the evaluator's compliance at 20 Euler steps
with CFG (seen / held-out), the Frechet distance and a fixed-batch validation loss. CPU minutes,
not wall time, are the currency: candidates run side by side on a shared machine, one thread each.

    python -m sprint_desktop.distill.sweep run p2-lr1e-3 --vae runs/vae/vae --runs runs/sweep --budget 45
    python -m sprint_desktop.distill.sweep report --runs runs/sweep --png docs/teacher-sweep.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .train_teacher import TeacherConfig

BASE: dict[str, Any] = dict(batch=64, lr=3e-4, warmup=200, mixed_precision="bf16", eval_images=128)
CANDIDATES: dict[str, dict[str, Any]] = {
    "p1-lr3e-4-b64": dict(patch_size=1),  # the shipped teacher's recipe
    "p2-lr3e-4-b64": dict(patch_size=2),
    "p2-lr1e-3-b64": dict(patch_size=2, lr=1e-3, warmup=500),
    "p2-lr1e-3-b32": dict(patch_size=2, lr=1e-3, warmup=500, batch=32),
    "p2-6x192-lr1e-3-b64": dict(patch_size=2, num_layers=6, num_heads=6, lr=1e-3, warmup=500),
}


def config(name: str, vae: str, runs: str, budget: float, cache: int, eval_every: int) -> TeacherConfig:
    """The candidate's TeacherConfig: BASE, then its overrides, a CPU budget and one thread."""
    if name not in CANDIDATES:
        raise ValueError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
    fields = {**BASE, **CANDIDATES[name]}
    return TeacherConfig(
        vae=vae,
        out=str(Path(runs) / name),
        iters=10**9,
        cpu_budget_min=budget,
        threads=1,
        cache=cache,
        eval_every=eval_every,
        **fields,
    )


def curves(runs: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Each candidate's evaluation rows (those with a judge score), in order."""
    out = {}
    for log in sorted(Path(runs).glob("*/log.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        out[log.parent.name] = [r for r in rows if "judge_all" in r]
    return out


def table(runs: str | Path) -> str:
    """A Markdown table: per candidate, its rows at each evaluation."""
    lines = [
        "| candidate | step | CPU min | s/it (wall) | judge all | seen | held-out | FD | val loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in curves(runs).items():
        for r in rows:
            lines.append(
                f"| {name} | {r['step']} | {r.get('cpu_min', '')} | {r['s_per_it']} | {r['judge_all']} | "
                f"{r['judge_seen']} | {r['judge_held_out']} | {r.get('fd', '')} | {r.get('val_loss', '')} |"
            )
    return "\n".join(lines)


def plot(runs: str | Path, png: str | Path) -> None:
    """Three panels against training CPU minutes: compliance, validation loss, Frechet distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(runs)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, rows in data.items():
        x = [r.get("cpu_min", 0) for r in rows]
        axes[0].plot(x, [r["judge_all"] for r in rows], marker="o", label=name)
        axes[1].plot(x, [r.get("val_loss") for r in rows], marker="o", label=name)
        axes[2].plot(x, [r.get("fd") for r in rows], marker="o", label=name)
    for ax, title in zip(
        axes, ("compliance (20 Euler steps, CFG 4.5)", "validation loss", "Frechet distance"), strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel("training CPU minutes (one thread)")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sprint_desktop.distill.sweep")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="train one candidate up to the CPU budget (resumes)")
    run.add_argument("name", choices=sorted(CANDIDATES))
    run.add_argument("--vae", default="runs/vae/vae")
    run.add_argument("--runs", default="runs/sweep")
    run.add_argument("--budget", type=float, default=45.0, help="training CPU minutes")
    run.add_argument("--cache", type=int, default=40000)
    run.add_argument("--eval-every", type=int, default=500)
    rep = sub.add_parser("report", help="print the table; --png writes the plot")
    rep.add_argument("--runs", default="runs/sweep")
    rep.add_argument("--png", default=None)
    args = parser.parse_args(argv)
    if args.cmd == "run":
        from .train_teacher import train

        train(config(args.name, args.vae, args.runs, args.budget, args.cache, args.eval_every))
    else:
        print(table(args.runs))
        if args.png:
            plot(args.runs, args.png)


if __name__ == "__main__":
    main()

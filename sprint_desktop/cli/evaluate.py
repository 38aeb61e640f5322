"""`sprint evaluate`: the model card's table (compliance and CPU ms per image)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import EXIT_OK, UsageError, parse_int_list


def register(sub: Any) -> None:
    ev = sub.add_parser("evaluate", help="the model card's table: compliance and CPU ms per image")
    ev.add_argument("--model", help="a model folder, sampled by our engine")
    ev.add_argument("--teacher", help="a teacher run folder (flow Euler sampling with CFG); needs --vae")
    ev.add_argument("--vae", default="runs/vae/vae")
    ev.add_argument("--steps", type=parse_int_list, default=[1, 2, 4])
    ev.add_argument("--images", type=int, default=200)
    ev.add_argument(
        "--seed",
        type=int,
        help="the captions' seed (default: the model card's captions); another checks a pick made on those",
    )
    ev.add_argument("--json", type=Path, default=Path("bench-out/evaluate.json"))
    ev.add_argument("--grid", type=Path, help="also save a sample grid PNG (seen and held-out prompts)")
    ev.add_argument(
        "--control",
        type=int,
        default=0,
        metavar="N",
        help="also evaluate the model's ControlNet at 1 step on N sketches not used in training "
        "(sketch IoU, compliance; written beside --json as *-control.json)",
    )
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.model) == bool(args.teacher):
        raise UsageError("give either --model PATH or --teacher RUN")
    if args.control < 0 or (args.control and not args.model):
        raise UsageError("--control N needs --model PATH and N >= 1 sketches")
    from ..distill.evaluate import (
        evaluate_control,
        evaluate_model,
        evaluate_teacher,
        format_rows,
        load_engine,
        sample_grid,
        teacher_grid,
        write,
    )
    from ..distill.train_student import CARD_SEED

    seed = CARD_SEED if args.seed is None else args.seed
    engine = None if args.teacher else load_engine(args.model)  # loaded once for rows, grids, sketches
    if args.teacher:
        rows = evaluate_teacher(args.teacher, args.vae, args.steps, args.images, seed=seed)
    else:
        rows = evaluate_model(args.model, args.steps, args.images, seed=seed, engine=engine)
    write(rows, args.json)
    print(format_rows(rows))
    if args.grid:
        for n in args.steps:
            path = args.grid.with_name(f"{args.grid.stem}-{n}step{args.grid.suffix or '.png'}")
            if args.teacher:
                path = teacher_grid(args.teacher, args.vae, path, steps=n)
            else:
                path = sample_grid(args.model, path, steps=n, engine=engine)
            print(f"grid written to {path}")
    if args.control:
        control = evaluate_control(args.model, args.control, engine=engine)
        path = args.json.with_name(f"{args.json.stem}-control.json")
        path.write_text(json.dumps(control, indent=2) + "\n")
        print(
            f"ControlNet, 1 step, {args.control} sketches: sketch IoU {control['sketch_iou']:.3f}, "
            f"compliance {control['judge_1step']:.3f} ({path})"
        )
    return EXIT_OK

"""`sprint bench`: our engine against the stock diffusers pipeline, or ONNX Runtime against PyTorch.

The timing code lives in `sprint_desktop.devtools`, which a source install has and the installed
app leaves out; without it this command says so in one line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import SprintError
from .common import (
    EXIT_OK,
    UsageError,
    add_compile_arg,
    add_model_args,
    parse_int_list,
    parse_size,
    resolve_model,
)

DEVTOOLS = "sprint_desktop.devtools"


def register(sub: Any) -> None:
    bench = sub.add_parser("bench", help="time our engine against the stock diffusers pipeline")
    add_model_args(bench)
    bench.add_argument(
        "--arch",
        choices=["tiny", "sana-sprint-0.6b", "sana-sprint-1.6b"],
        help="build this architecture with random weights instead of loading --model",
    )
    bench.add_argument(
        "--random-weights",
        action="store_true",
        help="required with a published --arch: say that the weights are random",
    )
    bench.add_argument("--size", type=parse_size, help="WxH (default: the model's size)")
    bench.add_argument(
        "--steps",
        type=parse_int_list,
        default=[1, 2, 4],
        help="step counts to time, comma-separated (default 1,2,4)",
    )
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per case (median reported)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed runs per case first")
    bench.add_argument("--no-stock", action="store_true", help="skip the stock pipeline comparison")
    bench.add_argument(
        "--control",
        action="store_true",
        help="also time generation with a ControlNet and a new sketch per image",
    )
    bench.add_argument(
        "--control-layers",
        type=int,
        help="with --control: a ControlNet of this many blocks copied from the model's transformer "
        "(its cost, not its quality; e.g. 2 for the retrained Sprint-Shapes ControlNet)",
    )
    bench.add_argument(
        "--text-encoder-layers",
        type=int,
        help="shrink Gemma-2 in a published --arch (for machines without the memory)",
    )
    add_compile_arg(
        bench,
        "also time the same engine with torch.compile in this MODE (default or reduce-overhead) after "
        "the eager rows: the first image's compile time, then each case's ratio compiled / eager",
    )
    bench.add_argument("--json", type=Path, default=Path("bench-out/bench.json"), help="where to write JSON")
    bench.set_defaults(func=run)


def _devtools_bench() -> Any:
    try:
        from ..devtools import bench
    except ModuleNotFoundError as exc:
        if exc.name not in (DEVTOOLS, f"{DEVTOOLS}.bench"):
            raise
        raise SprintError(
            "sprint bench needs a source install of Sprint Desktop (the installed app leaves out "
            "the developer tools in sprint_desktop/devtools)"
        ) from None
    return bench


def run(args: argparse.Namespace) -> int:
    if args.arch and args.arch != "tiny" and not args.random_weights:
        raise UsageError(f"--arch {args.arch} builds random weights: add --random-weights to confirm")
    if args.repeats < 1 or args.warmup < 0:
        raise UsageError("--repeats must be >= 1 and --warmup >= 0")
    if args.backend == "onnx" and args.arch:
        raise UsageError("--backend onnx benchmarks a model folder: give --model (or use the embedded model)")
    if args.compile != "off" and args.backend == "onnx":
        raise UsageError("--compile times the PyTorch engine: leave out --backend onnx")
    if args.control_layers is not None and (not args.control or args.arch):
        raise UsageError("--control-layers goes with --control on a model folder (not --arch)")
    bench = _devtools_bench()
    with tempfile.TemporaryDirectory(prefix="sprint-bench-") as tmp:
        model = None if args.arch else resolve_model(args.model)
        if args.control_layers is not None:
            from ..devtools.controlnet_variant import with_controlnet_blocks

            assert model is not None
            model = with_controlnet_blocks(Path(model), args.control_layers, Path(tmp) / "model")
            print(f"ControlNet: {args.control_layers} blocks copied from the transformer (cost only)")
        return _run(bench, args, model)


def _run(bench: Any, args: argparse.Namespace, model: Any) -> int:
    if args.backend == "onnx":
        report = bench.run_backend_bench(
            model, args.steps, args.repeats, args.warmup, args.size, control=args.control
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(report["table"])
        return EXIT_OK
    report = bench.run_bench(
        model=model,
        arch=args.arch,
        device=args.device,
        dtype=args.dtype,
        size=args.size,
        steps=args.steps,
        repeats=args.repeats,
        warmup=args.warmup,
        stock=not args.no_stock,
        text_encoder_layers=args.text_encoder_layers,
        control=args.control,
        compile=args.compile,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(report["table"])
    print(f"\nJSON: {args.json}")
    return EXIT_OK

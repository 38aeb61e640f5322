"""`sprint export-onnx`: export a model to ONNX (cached under the user cache folder), or with
``--graph-only`` its weight-free graphs (issue #12)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..core.errors import SprintError
from .common import EXIT_OK, resolve_model


def register(sub: Any) -> None:
    exp = sub.add_parser("export-onnx", help="export the model to ONNX (cached under the user cache folder)")
    exp.add_argument("--model", help="model folder (default: the embedded model)")
    exp.add_argument(
        "--precision",
        choices=["fp32", "fp16", "fp16-islands"],
        default="fp32",
        help="fp16-islands (with --graph-only): the text encoder's weight products in fp16, the rest fp32",
    )
    exp.add_argument("--force", action="store_true", help="export again even if a complete export is cached")
    exp.add_argument(
        "--graph-only",
        action="store_true",
        help="export weight-free graphs (every weight an external initializer, bound to a model's own "
        "safetensors on first use) into --out (default: the user cache's graph library)",
    )
    exp.add_argument("--out", type=Path, help="with --graph-only: the graph library folder to write")
    exp.add_argument(
        "--arch",
        choices=["sana-sprint-0.6b", "sana-sprint-1.6b"],
        help="with --graph-only: a published architecture built here with placeholder weights instead of --model",
    )
    exp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.graph_only or args.arch:
        return run_graphs(args)
    if args.precision == "fp16-islands":
        raise SprintError("--precision fp16-islands is for weight-free graphs: add --graph-only")
    from ..export.onnx_export import export_model

    start = time.perf_counter()

    def progress(component: str, i: int, total: int) -> None:
        if component != "done":
            print(f"[{i + 1}/{total}] exporting and checking {component}…", file=sys.stderr)

    folder = export_model(
        resolve_model(args.model), precision=args.precision, progress=progress, force=args.force
    )
    print(f"ONNX export ready in {folder} ({time.perf_counter() - start:.1f} s)")
    return EXIT_OK


def run_graphs(args: argparse.Namespace) -> int:
    from ..core.paths import user_cache_dir
    from ..export.graph_only import export_arch_graphs, export_model_graphs

    start = time.perf_counter()
    out = args.out or user_cache_dir() / "graphs"

    def progress(component: str, i: int, total: int) -> None:
        if component != "done":
            print(f"[{i + 1}/{total}] exporting {component} without weights…", file=sys.stderr)

    if args.arch:
        graphs = export_arch_graphs(args.arch, out, precision=args.precision, progress=progress)
    else:
        graphs = export_model_graphs(
            resolve_model(args.model), out, precision=args.precision, progress=progress
        )
    size = sum(g.stat().st_size for g in graphs)
    print(f"{len(graphs)} graphs ({size / 2**20:.1f} MiB) in {out} ({time.perf_counter() - start:.1f} s)")
    return EXIT_OK

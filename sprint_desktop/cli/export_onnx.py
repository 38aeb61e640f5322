"""`sprint export-onnx`: export a model to ONNX (cached under the user cache folder)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .common import EXIT_OK, resolve_model


def register(sub: Any) -> None:
    exp = sub.add_parser("export-onnx", help="export the model to ONNX (cached under the user cache folder)")
    exp.add_argument("--model", help="model folder (default: the embedded model)")
    exp.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    exp.add_argument("--force", action="store_true", help="export again even if a complete export is cached")
    exp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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

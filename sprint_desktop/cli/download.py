"""`sprint download`: fetch a catalog model for offline use (resumes, verifies)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .common import EXIT_OK


def register(sub: Any) -> None:
    dl = sub.add_parser("download", help="download a catalog model for offline use (resumes, verifies)")
    dl.add_argument("name", help="a model name from `sprint models`")
    dl.add_argument("--endpoint", help="hub address (default: huggingface_hub's, or HF_ENDPOINT)")
    dl.add_argument("--timeout", type=float, default=30.0, help="seconds without an answer before giving up")
    dl.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..store.catalog import find_entry
    from ..store.download import download

    start = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and done < total:
            return
        last[0] = now
        speed = done / max(now - start, 1e-6)
        left = (total - done) / speed if speed > 0 else float("inf")
        print(
            f"\r{done / 2**20:8.1f} / {total / 2**20:.1f} MB  {speed / 2**20:6.1f} MB/s  {left:5.0f} s left",
            end="",
            file=sys.stderr,
            flush=True,
        )

    folder = download(find_entry(args.name), endpoint=args.endpoint, progress=progress, timeout=args.timeout)
    print(f"\n{args.name} is ready for offline use in {folder}")
    return EXIT_OK

"""The `sprint` command: one module per command, each with `register(subparsers)` (its options,
and `set_defaults(func=run)`) and `run(args) -> exit code`. This module only dispatches.

Heavy libraries (torch, diffusers) are imported inside the commands that need them, so
`sprint --help` and `sprint info` answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import InvalidRequestError, SprintError
from . import bench, distill, download, evaluate, export_onnx, generate, info, models
from .common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

COMMANDS = (generate, models, download, export_onnx, info, bench, distill, evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sprint", description="One-step SANA-Sprint image generation.")
    parser.add_argument("--version", action="version", version=f"sprint-desktop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.error(str(exc))
    except InvalidRequestError as exc:
        print(f"sprint: invalid request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SprintError as exc:
        print(f"sprint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("sprint: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE  # not reached: parser.error exits

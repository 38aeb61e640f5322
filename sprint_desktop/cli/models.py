"""`sprint models`: the known models and their state on this machine; verify or remove one."""

from __future__ import annotations

import argparse
from typing import Any

from .common import EXIT_OK


def register(sub: Any) -> None:
    models = sub.add_parser("models", help="list the known models and their state on this machine")
    group = models.add_mutually_exclusive_group()
    group.add_argument("--verify", metavar="NAME", help="re-check every file of an installed model")
    group.add_argument("--remove", metavar="NAME", help="delete a downloaded model")
    models.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..store.catalog import find_entry, load_catalog, remove, state_of, verify_model

    if args.remove:
        print(f"removed {remove(find_entry(args.remove))}")
        return EXIT_OK
    if args.verify:
        print(verify_model(find_entry(args.verify)))
        return EXIT_OK
    print(f"{'name':<18} {'state':<10} {'on disk':>10} {'download':>9}  title")
    for entry in load_catalog():
        s = state_of(entry)
        print(
            f"{entry.name:<18} {s.state:<10} {s.size_bytes / 2**20:>8.1f}MB {entry.download_gb:>7.2f}GB  {entry.title}"
        )
        if s.problem:
            print(f"{'':<18} {s.problem}")
    return EXIT_OK

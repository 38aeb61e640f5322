"""`sprint info`: the parameters stored in a PNG made by sprint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import EXIT_OK


def register(sub: Any) -> None:
    info = sub.add_parser("info", help="print the parameters stored in a PNG made by sprint")
    info.add_argument("image", type=Path)
    info.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.metadata import read_png_params

    print(json.dumps(read_png_params(args.image), indent=2, ensure_ascii=False))
    return EXIT_OK

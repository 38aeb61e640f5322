"""What several `sprint` commands share: exit codes, option types, the model options and folder."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..core.errors import NoModelInstalledError
from ..core.paths import default_model_path, embedded_model_candidates

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A wrong combination of options, found by a command's `run`: `main` reports it as argparse
    reports a parse error (usage line, one message, exit 2)."""


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (or a single number for a square) -> (width, height)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        if len(parts) == 1:
            side = int(parts[0])
            return side, side
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"size must look like 1024x768, got {text!r}")


def parse_timesteps(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"timesteps must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"timesteps must be finite, got {text!r}")
    return values


def parse_int_list(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4] (step counts)."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated whole numbers, got {text!r}") from None


def resolve_model(model: str | None) -> Path:
    if model:
        return Path(model).expanduser()
    path = default_model_path()
    if path is None:
        places = ", ".join(str(p) for p in embedded_model_candidates())
        raise NoModelInstalledError(
            "no model is installed: the embedded Sprint-Shapes model was not found "
            f"(looked in {places}). Pass --model PATH to a SANA-Sprint folder in diffusers layout "
            "or set SPRINT_MODEL."
        )
    return path


BACKEND_HELP = {
    "auto": "ONNX Runtime when the model has an ONNX export (shipped or cached), else PyTorch",
    "torch": "PyTorch",
    "onnx": "ONNX Runtime on an export (made on first use; see export-onnx)",
}


def add_model_args(p: argparse.ArgumentParser, backends: tuple[str, ...] = ("torch", "onnx")) -> None:
    p.add_argument("--model", help="model folder in diffusers layout (default: the embedded model)")
    p.add_argument(
        "--backend",
        choices=list(backends),
        default=backends[0],
        help="; ".join(f"{b}: {BACKEND_HELP[b]}" for b in backends) + f" (default {backends[0]})",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when available, else CPU")
    p.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"], default="auto")


def add_compile_arg(p: argparse.ArgumentParser, help_text: str) -> None:
    from ..core.settings import COMPILE_MODES

    p.add_argument("--compile", choices=list(COMPILE_MODES), default="off", metavar="MODE", help=help_text)

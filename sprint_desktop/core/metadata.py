"""Generation parameters stored in PNG text chunks, readable back by `sprint info` and the app.

A PNG handed to the reader may come from anywhere: every way it can fail (not an image, a
decompression bomb in a text chunk, megabytes of text, JSON nested too deep for the parser) is one
`SprintError` with one line, and `restorable_params` keeps only values the controls can take."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from .. import __version__
from .errors import SprintError
from .request import MAX_GUIDANCE, MAX_PROMPT_CHARS, MAX_SEED, MAX_SIDE

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once, at import (in the main thread): os.umask can only be read by setting it

METADATA_KEY = "sprint-desktop"
"""The iTXt chunk holding the JSON parameters."""

FORMAT_VERSION = 1

MAX_METADATA_CHARS = 1_000_000
"""Our parameters are a few hundred bytes (a 10,000-character prompt at most): larger is not ours."""


def save_png(
    image: np.ndarray | Image.Image,
    path: str | os.PathLike[str],
    params: dict[str, Any],
    exclusive: bool = False,
) -> Path:
    """Write ``image`` to ``path`` atomically with ``params`` in its metadata; return the path.

    With ``exclusive``, an existing ``path`` is never replaced: `FileExistsError` instead (the
    finished file is linked into place, so the name is claimed and filled in one step)."""
    path = Path(path)
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    info = PngImagePlugin.PngInfo()
    payload = {"format": FORMAT_VERSION, "app_version": __version__, **params}
    info.add_itxt(METADATA_KEY, json.dumps(payload, ensure_ascii=False, sort_keys=True))
    # A plain-text copy of the prompt, for viewers that show PNG "Description".
    if isinstance(params.get("prompt"), str):
        info.add_itxt("Description", params["prompt"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pil.save(fh, format="PNG", pnginfo=info)
        # mkstemp makes the file 0600; a saved image gets the mode any new file would get.
        os.chmod(tmp, 0o666 & ~_UMASK)
        if exclusive:
            _link_exclusive(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _link_exclusive(tmp: str, path: Path) -> None:
    """Put ``tmp`` at ``path`` unless ``path`` exists (`FileExistsError`)."""
    try:
        os.link(tmp, path)  # atomic, fails if the name is taken
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # a file system without hard links: claim the name, then replace the empty claim
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    os.close(fd)
    os.replace(tmp, path)


def read_png_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters stored by `save_png`; `SprintError` if the file has none or is not a PNG."""
    path = Path(path)
    try:
        if not path.is_file():
            raise SprintError(f"no such file: {path}" if not path.exists() else f"{path} is not a file")
        with Image.open(path) as im:
            fmt = im.format
            raw = im.info.get(METADATA_KEY)  # our chunk is written before the pixels
            if raw is None and fmt == "PNG":
                im.load()  # text chunks after the pixels are only read with them
                raw = (getattr(im, "text", {}) or {}).get(METADATA_KEY)
    except SprintError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, MemoryError) as exc:
        # ValueError: PIL's limits on compressed text ("Decompressed Data Too Large") and others.
        raise SprintError(f"{path} is not a readable image: {_one_line(exc)}") from None
    if fmt != "PNG":
        raise SprintError(f"{path} is a {fmt} file, not a PNG made by Sprint Desktop")
    if raw is None:
        raise SprintError(f"{path} has no Sprint Desktop parameters (it was not made by this app)")
    if not isinstance(raw, str) or len(raw) > MAX_METADATA_CHARS:
        raise SprintError(f"{path} has damaged Sprint Desktop parameters (too large to be ours)")
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SprintError(f"{path} has damaged Sprint Desktop parameters: {exc}") from None
    except (RecursionError, ValueError):
        raise SprintError(f"{path} has damaged Sprint Desktop parameters (not JSON this app wrote)") from None
    if not isinstance(params, dict):
        raise SprintError(f"{path} has damaged Sprint Desktop parameters (not an object)")
    return params


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def restorable_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the values a control could not take (wrong type, out of range, NaN):
    what the app may put back into its controls from a PNG or a gallery row it did not check."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "prompt":
            ok = isinstance(value, str) and len(value) <= MAX_PROMPT_CHARS and "\x00" not in value
        elif key == "steps":
            ok = _is_int(value) and 1 <= value <= 4
        elif key == "seed":
            ok = _is_int(value) and 0 <= value <= MAX_SEED
        elif key in ("width", "height"):
            ok = value is None or (_is_int(value) and 1 <= value <= MAX_SIDE)
        elif key in ("guidance", "control_scale", "strength"):
            ok = _is_number(value) and math.isfinite(value) and 0 <= value <= MAX_GUIDANCE
        else:
            ok = True  # informational (model, backend, timesteps...): shown, never put in a control
        if ok:
            out[key] = value
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

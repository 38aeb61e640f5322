"""Generation parameters stored in PNG text chunks, readable back by `sprint info` and the app."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from .. import __version__
from .errors import SprintError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once, at import (in the main thread): os.umask can only be read by setting it

METADATA_KEY = "sprint-desktop"
"""The iTXt chunk holding the JSON parameters."""

FORMAT_VERSION = 1


def save_png(image: np.ndarray | Image.Image, path: str | os.PathLike[str], params: dict[str, Any]) -> Path:
    """Write ``image`` to ``path`` atomically with ``params`` in its metadata; return the path."""
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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_png_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters stored by `save_png`; `SprintError` if the file has none or is not a PNG."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            text = dict(getattr(im, "text", {}) or {})
            fmt = im.format
    except FileNotFoundError:
        raise SprintError(f"no such file: {path}") from None
    except (OSError, SyntaxError) as exc:
        raise SprintError(f"{path} is not a readable image: {exc}") from None
    if fmt != "PNG":
        raise SprintError(f"{path} is a {fmt} file, not a PNG made by Sprint Desktop")
    raw = text.get(METADATA_KEY)
    if raw is None:
        raise SprintError(f"{path} has no Sprint Desktop parameters (it was not made by this app)")
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SprintError(f"{path} has damaged Sprint Desktop parameters: {exc}") from None
    if not isinstance(params, dict):
        raise SprintError(f"{path} has damaged Sprint Desktop parameters (not an object)")
    return params

"""The exported-model cache under the user cache directory: pure Python, no torch, so the ONNX
Runtime backend can find an export on a machine without PyTorch.

An export lives in ``<cache>/onnx/<model>-<precision>-<key>/`` with a ``manifest.json`` written
last; an entry without a manifest, or with a file whose checksum differs, is partial or corrupt and
is rebuilt by the exporter.

A model may also ship its export inside its own folder, ``<model>/onnx/`` (the packaged app does:
it has ONNX Runtime but no PyTorch to export with). `find_export` looks there first and accepts it
under the same checks as a cached one: made from the model's files as they are now, in the format
this app reads, every file present with its recorded size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..core.paths import user_cache_dir


def cache_root() -> Path:
    return user_cache_dir() / "onnx"


EXPORT_FORMAT = 2
"""The layout of an export's graphs (bumped when it changes): 2 = TrigFlow step graph with the
ControlNet's residual inputs, and a ``controlnet`` graph. `OnnxEngine` reads only this format."""

SHIPPED_DIR = "onnx"
"""``<model>/onnx/``: an export shipped inside the model folder (see `shipped_export`)."""

FINGERPRINT_SKIPPED = (SHIPPED_DIR,)
"""Top-level folders of a model that are not the model: an export shipped inside it (``<model>/onnx/``)
is derived from the model and must not change the model's identity."""


def model_fingerprint(model_path: Path) -> str:
    """Every component of the model, the ControlNet included: configs, tokenizer files and settings
    by content, weights by size and modification time (hashing GBs would take minutes)."""
    h = hashlib.sha256()
    for path in sorted(model_path.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(model_path).as_posix()
        if rel.split("/", 1)[0] in FINGERPRINT_SKIPPED:
            continue
        if path.suffix == ".safetensors":
            stat = path.stat()
            h.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
        elif path.suffix in (".json", ".txt", ".model"):
            content = path.read_bytes()
            h.update(f"{rel}:{len(content)}\0".encode())
            h.update(content)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "manifest.json").read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, verify_checksums: bool = False) -> bool:
    """A finished export: a manifest whose every file exists with its recorded size (cheap, done at
    every load) and, with ``verify_checksums``, its recorded sha256 (reads every byte)."""
    data = read_manifest(folder)
    if data is None:
        return False
    try:
        for f in data["files"]:
            path = folder / f["file"]
            if not path.is_file() or path.stat().st_size != f["size"]:
                return False
            if verify_checksums and file_sha256(path) != f["sha256"]:
                return False
        return True
    except (OSError, KeyError, TypeError):
        return False


def _is_export_of(folder: Path, fingerprint: str) -> bool:
    """``folder`` holds a complete export, in the format this app reads, of the model whose
    fingerprint is ``fingerprint``."""
    data = read_manifest(folder)
    return (
        data is not None
        and data.get("fingerprint") == fingerprint
        and data.get("format") == EXPORT_FORMAT
        and is_complete(folder)
    )


def shipped_export(model_path: Path, precision: str = "fp32") -> Path | None:
    """``<model>/onnx/`` when it holds a complete ``precision`` export of the model as it is now."""
    folder = model_path / SHIPPED_DIR
    data = read_manifest(folder)
    if data is None or data.get("precision") != precision:
        return None
    return folder if _is_export_of(folder, model_fingerprint(model_path)) else None


def find_export(model_path: Path, precision: str = "fp32", root: Path | None = None) -> Path | None:
    """The export shipped in the model folder if it is valid, else the newest complete export of
    ``model_path`` as it is now (same files, ControlNet included, and an export format this app
    reads) in the cache under ``root``, else None."""
    shipped = shipped_export(model_path, precision)
    if shipped is not None:
        return shipped
    root = root or cache_root()
    if not root.is_dir():
        return None
    fingerprint = model_fingerprint(model_path)
    candidates = []
    for folder in root.glob(f"{model_path.name}-{precision}-*"):
        if _is_export_of(folder, fingerprint):
            candidates.append((folder.stat().st_mtime, folder))
    return max(candidates)[1] if candidates else None

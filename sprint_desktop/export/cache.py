"""The exported-model cache under the user cache directory: pure Python, no torch, so the ONNX
Runtime backend can find an export on a machine without PyTorch.

An export lives in ``<cache>/onnx/<model>-<precision>-<key>/`` with a ``manifest.json`` written
last; an entry without a manifest, or with a file whose checksum differs, is partial or corrupt and
is rebuilt by the exporter.

A model may also ship its export inside its own folder, ``<model>/onnx/`` (the packaged app does:
it has ONNX Runtime but no PyTorch to export with). `find_export` looks there first and accepts it
under the same checks as a cached one: made from the model's files as they are now, in the format
this app reads, every file present with its recorded size.

"Made from the model's files as they are now" is checked two ways. The fast check compares
`model_fingerprint` (weights by size and modification time) with the manifest's ``fingerprint``. A
copy of the model folder that does not keep modification times (``cp -r``, a git checkout, an
unzip, an installer) fails it, so for the shipped export, and only after the fast check failed,
`model_content_fingerprint` (weights by their bytes) is compared with the manifest's
``content_fingerprint``, which exports made since it was added record. Changed bytes fail both; an
export whose manifest has no ``content_fingerprint`` gets the fast check only, as before.

The shipped export's own files are checked the same way: their sizes at every load, and their
sha256 against the manifest whenever this machine has not yet verified them as they are now (the
first use of a shipped export, after a copy, after any file changed). A verification leaves a stamp
(every file's size and modification time) under the user cache, so later launches are fast; a file
whose bytes changed at the same size is refused, and the export is rebuilt or the load refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from ..core.files import file_sha256
from ..core.paths import user_cache_dir
from ..formats.layout import EXPORT_FORMAT
from ..formats.model_folder import MODEL_SETTINGS_FILE

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return user_cache_dir() / "onnx"


SHIPPED_DIR = "onnx"
"""``<model>/onnx/``: an export shipped inside the model folder (see `shipped_export`)."""

FINGERPRINT_SKIPPED = (SHIPPED_DIR,)
"""Top-level folders of a model that are not the model: an export shipped inside it (``<model>/onnx/``)
is derived from the model and must not change the model's identity."""


WEIGHT_SUFFIXES = (".safetensors",)
CONFIG_SUFFIXES = (".json", ".txt", ".model")


def _model_files(model_path: Path) -> Iterator[tuple[str, Path]]:
    """``(relative path, path)`` of every file a fingerprint covers, in a fixed order."""
    for path in sorted(model_path.rglob("*")):
        if not path.is_file() or path.suffix not in WEIGHT_SUFFIXES + CONFIG_SUFFIXES:
            continue
        rel = path.relative_to(model_path).as_posix()
        if rel.split("/", 1)[0] in FINGERPRINT_SKIPPED or any(
            part.startswith(".") for part in rel.split("/")
        ):
            continue  # a shipped export, or bookkeeping (a download record, huggingface_hub's .cache)
        yield rel, path


EXPORTED_SETTINGS = ("complex_human_instruction", "max_sequence_length")
"""The keys of the model's ``sprint_desktop.json`` that an export bakes in (the text encoder's input);
the others (name, default size and steps, example prompts...) are read from the folder at load, so
editing them does not make the export stale."""


def _config_bytes(rel: str, path: Path) -> bytes | None:
    """What a fingerprint hashes of a config file: its bytes, or for the model's settings file only
    the keys in `EXPORTED_SETTINGS` (None, hashing nothing, when it has none of them, as when it is
    absent; its raw bytes when it is not a JSON object)."""
    content = path.read_bytes()
    if rel != MODEL_SETTINGS_FILE:
        return content
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if not isinstance(data, dict):
        return content
    exported = {k: data[k] for k in EXPORTED_SETTINGS if k in data}
    return json.dumps(exported, sort_keys=True).encode() if exported else None


def model_fingerprint(model_path: Path) -> str:
    """Every component of the model, the ControlNet included: configs, tokenizer files and settings
    by content, weights by size and modification time (hashing GBs would take minutes)."""
    h = hashlib.sha256()
    for rel, path in _model_files(model_path):
        if path.suffix in WEIGHT_SUFFIXES:
            stat = path.stat()
            h.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
        elif (content := _config_bytes(rel, path)) is not None:
            h.update(f"{rel}:{len(content)}\0".encode())
            h.update(content)
    return h.hexdigest()


def model_content_fingerprint(model_path: Path) -> str:
    """The files `model_fingerprint` covers, weights by the sha256 of their bytes instead of their
    modification times: survives copies that reset them, but reads every byte (about 1 s a GB)."""
    h = hashlib.sha256(b"content-v1\0")
    for rel, path in _model_files(model_path):
        if path.suffix in WEIGHT_SUFFIXES:
            h.update(f"{rel}:{path.stat().st_size}:{file_sha256(path)}\0".encode())
        elif (content := _config_bytes(rel, path)) is not None:
            h.update(f"{rel}:{len(content)}\0".encode())
            h.update(content)
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


def verified_root() -> Path:
    """Stamps of shipped exports this machine has verified byte for byte."""
    return user_cache_dir() / "onnx-verified"


def _stat_stamp(folder: Path, data: dict[str, Any]) -> dict[str, list[int]] | None:
    try:
        names = ["manifest.json", *(str(f["file"]) for f in data["files"])]
        return {n: [(st := (folder / n).stat()).st_size, st.st_mtime_ns] for n in names}
    except (OSError, KeyError, TypeError):
        return None


def _stamp_path(folder: Path, stamps: Path) -> Path:
    return stamps / f"{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]}.json"


def export_files_verified(folder: Path, stamps: Path | None = None) -> bool:
    """Every file of the export in ``folder`` has the sha256 its manifest records, checked now or
    at an earlier verification whose stamp (sizes and modification times) still matches."""
    data = read_manifest(folder)
    if data is None:
        return False
    stamps = stamps or verified_root()
    now = _stat_stamp(folder, data)
    if now is None:
        return False
    stamp = _stamp_path(folder, stamps)
    try:
        if json.loads(stamp.read_text()) == {"folder": str(folder.resolve()), "files": now}:
            return True
    except (OSError, ValueError):
        pass
    if not is_complete(folder, verify_checksums=True):
        log.warning("%s: a file differs from its manifest's sha256; the export is not used", folder)
        return False
    try:
        stamps.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"folder": str(folder.resolve()), "files": now}))
        os.replace(tmp, stamp)
    except OSError:
        pass  # an unwritable cache: verify again next time
    return True


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


Check = Literal["fingerprint", "content"]


def shipped_export_check(
    model_path: Path, precision: str = "fp32", stamps: Path | None = None
) -> Check | None:
    """Which check accepts ``<model>/onnx/`` as a complete ``precision`` export of the model as it
    is now: ``"fingerprint"`` (the fast one), ``"content"`` (the weights' bytes, tried only when the
    fast one fails and the manifest records a ``content_fingerprint``), or None (not accepted)."""
    folder = model_path / SHIPPED_DIR
    data = read_manifest(folder)
    if data is None or data.get("precision") != precision:
        return None
    if data.get("format") != EXPORT_FORMAT or not is_complete(folder):
        return None
    check: Check | None = None
    if data.get("fingerprint") == model_fingerprint(model_path):
        check = "fingerprint"
    else:
        recorded = data.get("content_fingerprint")
        if isinstance(recorded, str) and recorded == model_content_fingerprint(model_path):
            check = "content"
    if check is None or not export_files_verified(folder, stamps):
        return None
    return check


def shipped_export(model_path: Path, precision: str = "fp32", stamps: Path | None = None) -> Path | None:
    """``<model>/onnx/`` when it holds a complete ``precision`` export of the model as it is now
    (see `shipped_export_check`)."""
    check = shipped_export_check(model_path, precision, stamps)
    if check is None:
        return None
    folder = model_path / SHIPPED_DIR
    if check == "content":
        log.info(
            "%s: the model's weights have other modification times than when it was exported "
            "(a copy that did not keep them?) but the same bytes; using it",
            folder,
        )
    return folder


def find_export(model_path: Path, precision: str = "fp32", root: Path | None = None) -> Path | None:
    """The export shipped in the model folder if it is valid, else the newest complete export of
    ``model_path`` as it is now (same files, ControlNet included, and an export format this app
    reads) in the cache under ``root``, else None.

    Cached exports get the fast fingerprint check only: this machine's exporter (so PyTorch) made
    them from the model folder where it is, and a model whose modification times changed is simply
    exported again under its new `model_key`, which is the fast fingerprint too; with a content
    fallback here, the stale entries the cache keeps would make launches read every byte of a
    multi-GB model to find an export this machine can rebuild anyway. The shipped export has no such
    remedy in the packaged app (no PyTorch) and is copied with the model: it gets the fallback."""
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

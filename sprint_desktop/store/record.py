"""The record a download leaves in its model folder (``.sprint-download.json``): which files the
hub listed, their sizes and sha256s, and whether the download finished. The downloader writes it;
the catalog reads it to tell a finished download from a stopped one and to verify the bytes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import SprintError
from ..core.files import file_sha256

RECORD_FILE = ".sprint-download.json"
"""The download record in a model folder: the hub's file list with sizes and sha256, and whether
every file arrived intact."""


def write_record(
    folder: Path, repo_id: str, revision: str, files: dict[str, dict[str, Any]], complete: bool
) -> None:
    """Write ``folder``'s download record atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(
        {"repo_id": repo_id, "revision": revision, "complete": complete, "files": files}, indent=1
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{RECORD_FILE}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / RECORD_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_record(folder: Path) -> dict[str, Any] | None:
    """``folder``'s download record, or None when it has none (the embedded model, a folder copied
    by hand, a download from before records); a damaged record reads as an incomplete download."""
    path = folder / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {"complete": False, "files": {}}
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return {"complete": False, "files": {}}
    return data


def record_problem(folder: Path) -> str | None:
    """Why the record says ``folder`` is not a finished download (cheap: names and sizes only),
    or None when it has no record or every recorded file is there with its size."""
    record = read_record(folder)
    if record is None:
        return None
    if record.get("complete") is not True:
        return "the download did not finish: download it again to complete it"
    for name, meta in record["files"].items():
        path = folder / name
        size = meta.get("size") if isinstance(meta, dict) else None
        if not path.is_file():
            return f"missing: {name}"
        if isinstance(size, int) and path.stat().st_size != size:
            return f"{name} has {path.stat().st_size:,} bytes, {size:,} expected"
    return None


def verify_download(folder: Path) -> tuple[int, int]:
    """Re-check a finished download against its record: every file present with its size, and
    every file with a recorded sha256 re-hashed. Returns (files present, files hashed); raises
    `SprintError` naming what differs (nothing is deleted: the user decides)."""
    record = read_record(folder)
    if record is None:
        return 0, 0
    problem = record_problem(folder)
    if problem is not None:
        raise SprintError(problem)
    bad, hashed = [], 0
    for name, meta in record["files"].items():
        expected = meta.get("sha256") if isinstance(meta, dict) else None
        if isinstance(expected, str):
            hashed += 1
            if file_sha256(folder / name) != expected:
                bad.append(name)
    if bad:
        raise SprintError(
            f"{len(bad)} file(s) differ from what was downloaded ({', '.join(sorted(bad)[:3])}): they were "
            "changed or damaged on disk; download the model again"
        )
    return len(record["files"]), hashed

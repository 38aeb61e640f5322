"""Reading small text files a user or another program handed us (settings, prompt lists, model
configs) without trusting them: regular files only (a FIFO would block, ``/dev/zero`` never
ends), a size limit before anything is read, and UTF-8 with an optional byte-order mark."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from .errors import SprintError


class UnreadableFileError(SprintError):
    """A file that is missing, not a regular file, too large or not UTF-8 text."""


def read_bounded_text(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> str:
    """The text of ``path`` (UTF-8, a leading BOM dropped); `UnreadableFileError` naming ``what``
    and the path when it is missing, not a regular file, over ``max_bytes`` or not UTF-8."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on the open fd.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise UnreadableFileError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UnreadableFileError(f"{what} is a folder, not a file: {path}") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise UnreadableFileError(f"cannot read {what} {path}: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableFileError(f"{what} is a folder, not a file: {path}")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(f"{what} is not a regular file (a device, pipe or socket): {path}")
        if info.st_size > max_bytes:
            raise UnreadableFileError(
                f"{what} is too large: {path} has {info.st_size:,} bytes (the limit is {max_bytes:,})"
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read {what} {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew while we read it
        raise UnreadableFileError(f"{what} is too large: {path} (the limit is {max_bytes:,} bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"{what} is not UTF-8 text: {path} (byte {exc.start})") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def parse_json(text: str, what: str = "file") -> object:
    """``json.loads`` whose failures (bad syntax, nesting too deep for the parser) are one
    `UnreadableFileError` naming ``what``."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableFileError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UnreadableFileError(f"{what} is not usable JSON: it is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python allows
        raise UnreadableFileError(f"{what} is not usable JSON: {exc}") from None


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes as hex, read 1 MiB at a time (exports, downloads, wheels)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

"""Builders of hostile inputs for the corpus: each returns a path made in ``tmp`` (pure Python and
Pillow, nothing downloaded)."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, PngImagePlugin

from sprint_desktop.core.metadata import METADATA_KEY, save_png


def one_line(message: str) -> None:
    """A message a user can read: one line, no traceback, not empty."""
    text = message.strip()
    assert text and "\n" not in text and "Traceback" not in text, message


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_raw_chunk(tmp: Path, name: str, kind: bytes, data: bytes) -> Path:
    base = tmp / f"{name}-base.png"
    Image.new("RGB", (4, 4), "white").save(base)
    raw = base.read_bytes()
    path = tmp / f"{name}.png"
    path.write_bytes(raw[:33] + _png_chunk(kind, data) + raw[33:])  # after IHDR
    base.unlink()
    return path


def _png_with_text(tmp: Path, name: str, text: str, compressed: bool = False) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, text, zip=compressed)
    path = tmp / f"{name}.png"
    Image.new("RGB", (4, 4), "white").save(path, pnginfo=info)
    return path


def _huge_dimensions(tmp: Path) -> Path:
    """A valid PNG header claiming 100000 x 100000 pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    path = tmp / "huge-dims.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _truncated(tmp: Path) -> Path:
    good = save_png(Image.new("RGB", (64, 64), "red"), tmp / "t-full.png", {"prompt": "p"})
    path = tmp / "truncated.png"
    path.write_bytes(good.read_bytes()[:60])
    good.unlink()
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _bad_crc(tmp: Path) -> Path:
    path = save_png(Image.new("RGB", (4, 4)), tmp / "crc.png", {"prompt": "p"})
    raw = path.read_bytes()
    return _write(path, raw[:29] + b"\0\0\0\0" + raw[33:])  # IHDR's CRC zeroed


def _fifo(tmp: Path) -> Path:
    path = tmp / "pipe.png"
    os.mkfifo(path)
    return path


def _jpeg(tmp: Path) -> Path:
    path = tmp / "photo.jpg"
    Image.new("RGB", (8, 8), "blue").save(path, format="JPEG")
    return path


def _symlink_loop(tmp: Path) -> Path:
    path = tmp / "loop.png"
    path.symlink_to(path)
    return path


BAD_PNGS: dict[str, Callable[[Path], Path]] = {
    "missing": lambda t: t / "nope.png",
    "folder": lambda t: (t / "dir.png").mkdir() or t / "dir.png",
    "fifo": _fifo,
    "symlink loop": _symlink_loop,
    "empty file": lambda t: _write(t / "empty.png", b""),
    "text file": lambda t: _write(t / "text.png", b"hello"),
    "png signature only": lambda t: _write(t / "sig.png", b"\x89PNG\r\n\x1a\n"),
    "truncated": _truncated,
    "jpeg": _jpeg,
    "no metadata": lambda t: Image.new("RGB", (4, 4)).save(t / "plain.png") or t / "plain.png",
    "metadata not json": lambda t: _png_with_text(t, "notjson", "{prompt: oops"),
    "metadata a list": lambda t: _png_with_text(t, "list", "[1, 2]"),
    "metadata nested 200k": lambda t: _png_with_text(t, "nested", "[" * 200_000 + "]" * 200_000),
    "metadata 3 MB": lambda t: _png_with_text(t, "big", '{"prompt": "' + "x" * 3_000_000 + '"}'),
    "metadata huge int": lambda t: _png_with_text(t, "bigint", '{"seed": ' + "9" * 5000 + "}"),
    "ztxt bomb 100 MB": lambda t: _png_with_raw_chunk(
        t, "bomb", b"zTXt", METADATA_KEY.encode() + b"\0\0" + zlib.compress(b"a" * 100_000_000, 9)
    ),
    "itxt bad compression": lambda t: _png_with_raw_chunk(
        t, "badz", b"iTXt", METADATA_KEY.encode() + b"\0\1\0\0\0" + b"not zlib data"
    ),
    "bad chunk crc": _bad_crc,
    "huge dimensions": _huge_dimensions,
}

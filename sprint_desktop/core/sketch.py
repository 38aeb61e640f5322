"""Turning an imported picture into a sketch: dark edges on white, with no downloaded weights."""

from __future__ import annotations

import numpy as np


def edges_to_sketch(image: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """Sobel edges of ``image`` (uint8 H x W x 3 or H x W) as dark strokes on white, uint8 H x W x 3.

    ``threshold`` is a fraction of the strongest edge; flat images give a blank sketch.
    """
    arr = np.asarray(image, dtype=np.float32)
    gray = arr if arr.ndim == 2 else arr[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    g = np.pad(gray, 1, mode="edge")
    gx = (g[:-2, 2:] + 2 * g[1:-1, 2:] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[1:-1, :-2] + g[2:, :-2])
    gy = (g[2:, :-2] + 2 * g[2:, 1:-1] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[:-2, 1:-1] + g[:-2, 2:])
    mag = np.hypot(gx, gy)
    peak = float(mag.max())
    out = np.full(gray.shape, 255, np.uint8)
    if peak > 1e-6:
        out[mag >= threshold * peak] = 0
    return np.repeat(out[..., None], 3, axis=2)


MAX_CONTROL_PIXELS = 16_000_000
MAX_CONTROL_SIDE = 8192


def looks_like_sketch(image: np.ndarray) -> bool:
    """Dark strokes on white: nearly grey everywhere and mostly near-white."""
    arr = np.asarray(image, dtype=np.int16)[..., :3]
    chroma = (arr.max(axis=2) - arr.min(axis=2)).mean()
    white = (arr.min(axis=2) > 200).mean()
    return bool(chroma < 12 and white > 0.6)


def prepare_control(image: np.ndarray) -> np.ndarray:
    """A sketch for the engine: hand-drawn sketches as they are, other pictures through the edge
    extractor (the app's import does the same)."""
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = arr[..., :3]
    return np.ascontiguousarray(arr) if looks_like_sketch(arr) else edges_to_sketch(arr)


def control_pixels(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A sketch as the VAE encoder's input, the same for every backend: resized to ``width`` x
    ``height`` (Lanczos) when it is another size, ``(1, 3, height, width)`` float32 in [-1, 1]."""
    from PIL import Image

    pil = Image.fromarray(np.asarray(image))
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(pil, dtype=np.float32).transpose(2, 0, 1)[None] / np.float32(127.5) - np.float32(1)


def load_control_image(path: str) -> np.ndarray:
    """Read a control picture with clear errors for a missing file, a non-image and a huge image."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    from .errors import InvalidRequestError

    if Path(path).exists() and not Path(path).is_file():  # a folder, a FIFO (would block), a device
        raise InvalidRequestError(f"control image {path} is not a regular file")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_CONTROL_PIXELS or max(w, h) > MAX_CONTROL_SIDE:
                raise InvalidRequestError(
                    f"control image {path} is {w}x{h}; the limit is {MAX_CONTROL_SIDE} px a side and "
                    f"{MAX_CONTROL_PIXELS // 1_000_000} megapixels"
                )
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InvalidRequestError(f"control image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # ValueError: PIL's limits on text chunks; SyntaxError: some broken headers.
        reason = " ".join(str(exc).split())[:200]
        raise InvalidRequestError(f"control image {path} is not a readable image ({reason})") from None
    return prepare_control(arr)

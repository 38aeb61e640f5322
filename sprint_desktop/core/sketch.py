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

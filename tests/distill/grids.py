"""What every sample grid (`evaluate.save_grid`) must be, shared by the model's and the teacher's
grid tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def assert_one_tile_per_grid_prompt(path: Path) -> None:
    """A grid at scale 1: a row per prompt group, a 64-px tile per prompt with 4-px gaps; every tile
    is a generated image (not the grey background) and different prompts give different tiles."""
    from PIL import Image

    from sprint_desktop.distill.evaluate import GRID_PROMPTS

    image = np.asarray(Image.open(path))
    n_rows, n_cols = len(GRID_PROMPTS), max(len(v) for v in GRID_PROMPTS.values())
    assert image.shape == (n_rows * 68 + 4, n_cols * 68 + 4, 3)
    tiles = [
        image[4 + r * 68 : 68 + r * 68, 4 + c * 68 : 68 + c * 68]
        for r in range(n_rows)
        for c in range(n_cols)
    ]
    assert all((t != 200).any() for t in tiles) and not np.array_equal(tiles[0], tiles[1])

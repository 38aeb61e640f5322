"""Seeded noise, drawn with numpy so every backend and device gets the same numbers.

One image uses one PCG64 stream: first the initial latent, then one re-noise draw per step
after the first. CUDA and CPU random generators differ; numpy's do not.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def draw_noise(seed: int, shape: tuple[int, ...], steps: int) -> np.ndarray:
    """Unit Gaussian noise of shape ``(steps, *shape)``, float32.

    ``[0]`` starts the chain at ``t_max``; ``[i]`` re-noises before step ``i`` (``i >= 1``).
    """
    return _draw_noise_cached(int(seed), tuple(int(d) for d in shape), int(steps)).copy()


@lru_cache(maxsize=16)
def _draw_noise_cached(seed: int, shape: tuple[int, ...], steps: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps, *shape), dtype=np.float32)

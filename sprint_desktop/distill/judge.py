"""The weight-free compliance judge of Sprint-Shapes (a GenEval-like score, TOY_WORLD.md).

It finds the shapes in an image without any learned weights: each pixel is projected onto the
line from white to every palette colour (anti-aliased edges are blends with white), pixels at least
half-way to a colour form connected components, and each component's shape class comes from its
fill ratio in its bounding box (square ~1.0, circle ~pi/4, triangle ~0.5, cross ~0.36) plus its
symmetry. A caption's claims (objects, colours, sizes, count, relation) must then all hold.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import numpy as np

from .world import (
    COLORS,
    HELD_OUT,
    IMAGE_SIZE,
    NUMBERS,
    PALETTE,
    PLURALS,
    RELATIONS,
    SHAPES,
    SIZES,
    Shape,
    satisfies,
)

WHITE = np.array([255.0, 255.0, 255.0])
MAX_RESIDUAL = 40.0
"""Largest distance (RGB units) of a pixel from the white-to-colour line that still counts as that colour."""
MIN_AREA = 5
"""Components smaller than this (pixels) are ignored as anti-aliasing dust."""
MAX_SOFTNESS = 1.5
"""Largest ratio of soft-edge pixels (a quarter to half-way to the colour) to outline pixels: an
anti-aliased render stays under 1.35, a blur of 0.7 px has a median of 1.34 and 1.0 px of 1.8."""
RELATION_GAP = 0.05
SIZE_THRESHOLD = (SIZES["small"] + SIZES["large"]) / 2

_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_SIZE = "|".join(SIZES)
_NOUN = rf"an? (?:({_SIZE}) )?({_COLOR}) ({_SHAPE})"
_SINGLE = re.compile(rf"^{_NOUN}$")
_TWO = re.compile(rf"^{_NOUN} and {_NOUN}$")
_RELATION = re.compile(rf"^{_NOUN} ({'|'.join(RELATIONS)}) {_NOUN}$")
_COUNT = re.compile(rf"^({'|'.join(NUMBERS)}) ({_COLOR}) ({_SHAPE}|{'|'.join(PLURALS.values())})$")
_SINGULAR = {v: k for k, v in PLURALS.items()}


@dataclass(frozen=True)
class Want:
    color: str
    shape: str
    size: str | None


@dataclass(frozen=True)
class Claims:
    family: str
    objects: tuple[Want, ...]
    relation: str | None = None

    @property
    def held_out(self) -> bool:
        return any((w.color, w.shape) in HELD_OUT for w in self.objects)


@dataclass(frozen=True)
class Detection:
    color: str
    shape: str
    size: str
    cx: float
    cy: float
    area: int
    half: float = 0.0


def parse_caption(caption: str) -> Claims:
    """The claims of a caption of the grammar; `ValueError` for anything else."""
    text = " ".join(caption.lower().split())
    if m := _SINGLE.match(text):
        return Claims("single", (Want(m[2], m[3], m[1]),))
    if m := _RELATION.match(text):
        return Claims("relation", (Want(m[2], m[3], m[1]), Want(m[6], m[7], m[5])), relation=m[4])
    if m := _TWO.match(text):
        return Claims("two", (Want(m[2], m[3], m[1]), Want(m[5], m[6], m[4])))
    if m := _COUNT.match(text):
        count = NUMBERS.index(m[1]) + 1
        shape = _SINGULAR.get(m[3], m[3])
        if (count == 1) != (m[3] in SHAPES):
            raise ValueError(f"number and noun disagree in {caption!r}")
        return Claims("counting", tuple(Want(m[2], shape, None) for _ in range(count)))
    raise ValueError(f"not a caption of the Sprint-Shapes grammar: {caption!r}")


def _alpha(image: np.ndarray, color: str) -> np.ndarray:
    """How far each pixel is from white towards ``color`` (0 white, 1 the colour), float (H, W)."""
    d = WHITE - np.array(PALETTE[color], dtype=np.float64)
    return np.clip(((WHITE - image.astype(np.float64)) @ d) / (d @ d), 0.0, 1.0)


def softness(pixels: np.ndarray, alpha: np.ndarray) -> float:
    """Soft-edge pixels around a component per outline pixel: how blurred its edges are."""
    mask = np.zeros(alpha.shape, dtype=bool)
    mask[pixels[:, 0], pixels[:, 1]] = True
    pad = np.pad(mask, 1)
    inner = pad[1:-1, 1:-1] & pad[2:, 1:-1] & pad[:-2, 1:-1] & pad[1:-1, 2:] & pad[1:-1, :-2]
    outline = int(mask.sum() - inner.sum())
    r0, c0 = max(pixels[:, 0].min() - 3, 0), max(pixels[:, 1].min() - 3, 0)
    r1, c1 = pixels[:, 0].max() + 4, pixels[:, 1].max() + 4
    window = alpha[r0:r1, c0:c1]
    return float(((window > 0.08) & (window < 0.5)).sum()) / max(outline, 1)


def color_labels(image: np.ndarray) -> np.ndarray:
    """Per-pixel palette index (into COLORS) where the pixel is at least half-way from white to that
    colour and close to the white-colour line; -1 elsewhere. int (H, W)."""
    q = WHITE - image.astype(np.float64)  # (H, W, 3)
    best = np.full(image.shape[:2], np.inf)
    best_alpha = np.zeros(image.shape[:2])
    nearest = np.full(image.shape[:2], -1, dtype=np.int64)
    for i, name in enumerate(COLORS):
        d = WHITE - np.array(PALETTE[name], dtype=np.float64)
        alpha = np.clip((q @ d) / (d @ d), 0.0, 1.0)
        residual = np.linalg.norm(q - alpha[..., None] * d, axis=-1)
        # The colour whose blend line passes closest decides, so the soft edge of an orange shape
        # stays orange rather than becoming a yellow ring.
        closer = (alpha > 0.1) & (residual < best)
        nearest[closer] = i
        best[closer] = residual[closer]
        best_alpha[closer] = alpha[closer]
    labels = np.where((best_alpha >= 0.5) & (best < MAX_RESIDUAL), nearest, -1)
    return labels


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, each as an (N, 2) array of (row, col)."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        queue, pixels = deque([(r0, c0)]), []
        while queue:
            r, c = queue.popleft()
            pixels.append((r, c))
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
        out.append(np.array(pixels))
    return out


def classify(pixels: np.ndarray) -> str | None:
    """Shape class of one component from its fill ratio and symmetry; None if it is no clean shape."""
    rows, cols = pixels[:, 0], pixels[:, 1]
    height = rows.max() - rows.min() + 1
    width = cols.max() - cols.min() + 1
    if not 0.75 <= width / height <= 1.33:
        return None
    fill = len(pixels) / (width * height)
    grid = np.zeros((height, width), dtype=bool)
    grid[rows - rows.min(), cols - cols.min()] = True
    top, bottom = grid[: max(1, height // 4)].sum(), grid[-max(1, height // 4) :].sum()
    lr_sym = (grid == grid[:, ::-1]).mean()
    tb_sym = (grid == grid[::-1]).mean()
    if lr_sym < 0.85:
        return None
    if 0.25 <= fill < 0.45 and tb_sym >= 0.85 and grid[height // 2, width // 2]:
        return "cross"
    if 0.4 <= fill < 0.64 and bottom > 2 * top:
        return "triangle"
    if 0.64 <= fill < 0.89 and tb_sym >= 0.85:
        return "circle"
    if fill >= 0.89 and tb_sym >= 0.85:
        return "square"
    return None


def detect(image: np.ndarray) -> tuple[list[Detection], int]:
    """Shapes found in ``image`` (uint8 H x W x 3), and the number of components that are no shape."""
    image = np.asarray(image)
    side = image.shape[0]
    labels = color_labels(image)
    found, junk = [], 0
    for i, name in enumerate(COLORS):
        if not (labels == i).any():
            continue
        alpha = _alpha(image, name)
        for pixels in _components(labels == i):
            if len(pixels) < MIN_AREA:
                continue
            shape = classify(pixels) if softness(pixels, alpha) <= MAX_SOFTNESS else None
            if shape is None:
                junk += 1
                continue
            rows, cols = pixels[:, 0], pixels[:, 1]
            half = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) / 2 / side
            found.append(
                Detection(
                    color=name,
                    shape=shape,
                    size="small" if half < SIZE_THRESHOLD else "large",
                    cx=(cols.min() + cols.max() + 1) / 2 / side,
                    cy=(rows.min() + rows.max() + 1) / 2 / side,
                    area=len(pixels),
                    half=half,
                )
            )
    return found, junk


def _matches(det: Detection, want: Want) -> bool:
    return (
        det.color == want.color and det.shape == want.shape and (want.size is None or det.size == want.size)
    )


def judge(image: np.ndarray, caption: str | Claims) -> bool:
    """Do all of the caption's claims hold in ``image``, with nothing else in it?"""
    claims = caption if isinstance(caption, Claims) else parse_caption(caption)
    found, junk = detect(image)
    if junk or len(found) != len(claims.objects):
        return False
    if claims.family == "counting" or claims.family == "single":
        return all(_matches(d, claims.objects[0]) for d in found)
    a, b = claims.objects
    for first, second in ((found[0], found[1]), (found[1], found[0])):
        if not (_matches(first, a) and _matches(second, b)):
            continue
        if claims.relation is None or satisfies(
            _as_shape(first), claims.relation, _as_shape(second), RELATION_GAP
        ):
            return True
    return False


def _as_shape(d: Detection) -> Shape:
    return Shape(d.color, d.shape, "small", d.cx, d.cy)


def compliance(images: np.ndarray | list[np.ndarray], captions: list[str]) -> dict[str, float | int]:
    """Share of images that satisfy their caption: overall, per family, and seen vs held-out pairs."""
    groups: dict[str, list[bool]] = {}
    for image, caption in zip(images, captions, strict=True):
        claims = parse_caption(caption)
        ok = judge(image, claims)
        split = "held_out" if claims.held_out else "seen"
        for key in ("all", split, claims.family, f"{claims.family}/{split}"):
            groups.setdefault(key, []).append(ok)
    out: dict[str, float | int] = {k: float(np.mean(v)) for k, v in sorted(groups.items())}
    out["n"] = len(captions)
    return out


__all__ = ["Claims", "Detection", "IMAGE_SIZE", "classify", "compliance", "detect", "judge", "parse_caption"]


def self_check(n: int = 400, seed: int = 1) -> dict[str, float]:
    """The judge on its own world: clean renders, blank images, mismatched captions, blurred renders."""
    from PIL import Image, ImageFilter

    from .world import render, sample_scene

    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, held_out=None) for _ in range(n)]
    images = [render(s) for s in scenes]
    captions = [s.caption for s in scenes]

    def blurred(radius: float) -> list[np.ndarray]:
        return [np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(radius))) for i in images]

    return {
        "clean": compliance(images, captions)["all"],
        "blank": compliance([np.full_like(images[0], 255)] * n, captions)["all"],
        "mismatched captions": compliance(images, captions[1:] + captions[:1])["all"],
        "blur 0.7 px": compliance(blurred(0.7), captions)["all"],
        "blur 1.0 px": compliance(blurred(1.0), captions)["all"],
    }


if __name__ == "__main__":
    for name, score in self_check().items():
        print(f"{name:>20}: {score:.3f}")

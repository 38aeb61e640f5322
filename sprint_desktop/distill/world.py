"""The Sprint-Shapes world (../shared/docs/TOY_WORLD.md): palette, shapes, sizes, caption grammar,
held-out pairs, seeded scenes, renders and sketches. The one place these facts live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

IMAGE_SIZE = 64
SUPERSAMPLE = 4
BACKGROUND = (255, 255, 255)
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (235, 200, 20),
    "green": (40, 170, 60),
    "cyan": (30, 180, 200),
    "blue": (40, 70, 220),
    "purple": (140, 50, 180),
    "black": (30, 30, 30),
}
COLORS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "cross")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
SIZES: dict[str, float] = {"small": 0.12, "large": 0.24}
"""Half-extent of each size, as a fraction of the image side."""
CROSS_ARM = 0.2
"""Arm width of a cross as a fraction of its span."""
RELATIONS = ("left of", "right of", "above", "below")
MIN_RELATION_GAP = 0.15
NUMBERS = ("one", "two", "three", "four")
FAMILIES = ("single", "two", "relation", "counting")
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "triangle"),
        ("orange", "cross"),
        ("yellow", "square"),
        ("green", "circle"),
        ("cyan", "triangle"),
        ("blue", "cross"),
        ("purple", "square"),
        ("black", "circle"),
    }
)
SIZES_LIST = tuple(SIZES)
EMPTY_CAPTION_P = 0.1
SIZE_WORD_P = 0.5
VOCABULARY = tuple(
    dict.fromkeys(
        [
            "a",
            "an",
            "and",
            *NUMBERS,
            *SIZES,
            *COLORS,
            *SHAPES,
            *PLURALS.values(),
            "left",
            "right",
            "of",
            "above",
            "below",
        ]
    )
)


@dataclass(frozen=True)
class Shape:
    """One object: colour, shape, size name and centre (x right, y down, in [0, 1])."""

    color: str
    shape: str
    size: str
    cx: float
    cy: float

    @property
    def half(self) -> float:
        return SIZES[self.size]


@dataclass(frozen=True)
class Scene:
    objects: tuple[Shape, ...]
    caption: str
    family: str  # one of FAMILIES, or "empty"

    @property
    def held_out(self) -> bool:
        return any((o.color, o.shape) in HELD_OUT for o in self.objects)


def _noun(obj: Shape, with_size: bool) -> str:
    size = f"{obj.size} " if with_size else ""
    return f"a {size}{obj.color} {obj.shape}"


def _fits(obj: Shape, others: list[Shape], margin: float = 0.03) -> bool:
    h = obj.half
    if not (h <= obj.cx <= 1 - h and h <= obj.cy <= 1 - h):
        return False
    return all(
        abs(obj.cx - o.cx) >= h + o.half + margin or abs(obj.cy - o.cy) >= h + o.half + margin for o in others
    )


def _place(rng: np.random.Generator, color: str, shape: str, size: str, others: list[Shape]) -> Shape | None:
    h = SIZES[size]
    for _ in range(200):
        obj = Shape(color, shape, size, float(rng.uniform(h, 1 - h)), float(rng.uniform(h, 1 - h)))
        if _fits(obj, others):
            return obj
    return None


def _pair(rng: np.random.Generator, held_out: bool | None) -> tuple[str, str]:
    """A colour-shape pair: seen only (False), held-out only (True) or any (None)."""
    while True:
        pair = (COLORS[rng.integers(len(COLORS))], SHAPES[rng.integers(len(SHAPES))])
        if held_out is None or (pair in HELD_OUT) == held_out:
            return pair


def sample_scene(
    rng: np.random.Generator,
    family: str | None = None,
    held_out: bool | None = False,
    empty_p: float = 0.0,
) -> Scene:
    """A random scene and its caption.

    ``held_out=False`` (training) never uses a held-out pair; ``True`` makes at least one object's
    pair held-out (evaluation); ``None`` allows both. ``empty_p`` is the chance of an empty caption.
    """
    if empty_p and rng.random() < empty_p:
        return replace(sample_scene(rng, family, held_out), caption="", family="empty")
    family = family or FAMILIES[rng.integers(len(FAMILIES))]
    with_size = bool(rng.random() < SIZE_WORD_P)
    for _ in range(100):
        need_held = held_out is True
        if family in ("single", "counting"):
            color, shape = _pair(rng, True if need_held else held_out)
            count = 1 if family == "single" else int(rng.integers(1, 5))
            objs: list[Shape] = []
            for _ in range(count):
                size = SIZES_LIST[rng.integers(2)] if count <= 2 else "small"
                obj = _place(rng, color, shape, size, objs)
                if obj is None:
                    break
                objs.append(obj)
            if len(objs) != count:
                continue
            if family == "single":
                caption = _noun(objs[0], with_size)
            else:
                noun = shape if count == 1 else PLURALS[shape]
                caption = f"{NUMBERS[count - 1]} {color} {noun}"
            return Scene(tuple(objs), caption, family)
        # Two objects, optionally in a relation; when held-out pairs are wanted, the first one is.
        first_pair = _pair(rng, True if need_held else held_out)
        second_pair = _pair(rng, None if need_held else held_out)
        if first_pair == second_pair:
            continue
        a = _place(rng, *first_pair, SIZES_LIST[rng.integers(2)], [])
        b = _place(rng, *second_pair, SIZES_LIST[rng.integers(2)], [a] if a else [])
        if a is None or b is None:
            continue
        if family == "two":
            return Scene((a, b), f"{_noun(a, with_size)} and {_noun(b, with_size)}", family)
        relation = RELATIONS[rng.integers(len(RELATIONS))]
        if not satisfies(a, relation, b, MIN_RELATION_GAP):
            continue
        return Scene((a, b), f"{_noun(a, with_size)} {relation} {_noun(b, with_size)}", family)
    raise RuntimeError(f"could not place a {family} scene")  # not reached in practice


def with_extra_object(scene: Scene, rng: np.random.Generator) -> Scene | None:
    """``scene`` with one of its objects drawn once more somewhere free, under the same caption: a
    picture that caption no longer describes (one object too many for every family). None when the
    copy does not fit. The students' discriminator sees these as fakes (`distill.ladd`)."""
    if not scene.objects:
        return None
    twin = scene.objects[int(rng.integers(len(scene.objects)))]
    for size in dict.fromkeys((twin.size, "small")):  # its own size, else a small copy
        extra = _place(rng, twin.color, twin.shape, size, list(scene.objects))
        if extra is not None:
            return replace(scene, objects=(*scene.objects, extra))
    return None


def satisfies(a: Shape, relation: str, b: Shape, gap: float) -> bool:
    """Does ``a`` stand ``relation`` ``b`` with centres at least ``gap`` apart along that axis?"""
    if relation == "left of":
        return b.cx - a.cx >= gap
    if relation == "right of":
        return a.cx - b.cx >= gap
    if relation == "above":
        return b.cy - a.cy >= gap
    if relation == "below":
        return a.cy - b.cy >= gap
    raise ValueError(f"unknown relation {relation!r}")


def shape_mask(obj: Shape, size: int) -> np.ndarray:
    """Boolean coverage of ``obj`` on a ``size`` x ``size`` grid (pixel centres)."""
    coords = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    dx, dy, h = x - obj.cx, y - obj.cy, obj.half
    if obj.shape == "circle":
        return dx * dx + dy * dy <= h * h
    if obj.shape == "square":
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if obj.shape == "triangle":  # apex up: (0, -h), base from (-h, h) to (h, h)
        inside_base = dy <= h
        # Left and right edges: |dx| <= (dy + h) / 2, i.e. the width grows from 0 at the apex to 2h.
        return inside_base & (np.abs(dx) <= (dy + h) / 2)
    if obj.shape == "cross":
        arm = CROSS_ARM * h  # half of the arm width (arm width = CROSS_ARM * span = CROSS_ARM * 2h)
        return ((np.abs(dx) <= h) & (np.abs(dy) <= arm)) | ((np.abs(dy) <= h) & (np.abs(dx) <= arm))
    raise ValueError(f"unknown shape {obj.shape!r}")


def render(scene: Scene | tuple[Shape, ...], size: int = IMAGE_SIZE) -> np.ndarray:
    """The scene as uint8 (size, size, 3): flat colours on white, anti-aliased by 4x supersampling."""
    objects = scene.objects if isinstance(scene, Scene) else scene
    big = size * SUPERSAMPLE
    canvas = np.empty((big, big, 3), np.float32)
    canvas[:] = BACKGROUND
    for obj in objects:
        canvas[shape_mask(obj, big)] = PALETTE[obj.color]
    small = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


def _outline(obj: Shape) -> list[tuple[float, float]]:
    """Points around the shape's outline, in order, in [0, 1] coordinates."""
    h, cx, cy = obj.half, obj.cx, obj.cy
    if obj.shape == "circle":
        return [(cx + h * math.cos(a), cy + h * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 48)]
    if obj.shape == "square":
        corners = [(-h, -h), (h, -h), (h, h), (-h, h), (-h, -h)]
    elif obj.shape == "triangle":
        corners = [(0, -h), (h, h), (-h, h), (0, -h)]
    else:
        a = CROSS_ARM * h
        corners = [(-a, -h), (a, -h), (a, -a), (h, -a), (h, a), (a, a), (a, h), (-a, h), (-a, a), (-h, a),
                   (-h, -a), (-a, -a), (-a, -h)]  # fmt: skip
    return [(cx + x, cy + y) for x, y in corners]


def sketch(scene: Scene | tuple[Shape, ...], rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A hand-drawn-looking sketch: dark, slightly jittered strokes (1-3 px) along each outline,
    not always closed, on white. uint8 (size, size, 3)."""
    from PIL import Image, ImageDraw

    objects = scene.objects if isinstance(scene, Scene) else scene
    big = size * SUPERSAMPLE
    img = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(img)
    for obj in objects:
        pts = _outline(obj)
        dense: list[tuple[float, float]] = []
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            n = max(2, int(math.hypot(x1 - x0, y1 - y0) * 40))
            dense += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n)]
        gap = int(rng.integers(0, max(1, len(dense) // 12)))  # leave the stroke a little open
        dense = dense[: len(dense) - gap] if gap else dense
        jitter = rng.normal(0, 0.006, (len(dense), 2)).cumsum(axis=0) * 0.3
        xy = [((x + jx) * big, (y + jy) * big) for (x, y), (jx, jy) in zip(dense, jitter, strict=True)]
        width = int(rng.integers(1, 4)) * SUPERSAMPLE
        draw.line(xy, fill=int(rng.integers(0, 60)), width=width, joint="curve")
    small = img.resize((size, size), Image.Resampling.BOX)
    return np.repeat(np.asarray(small)[:, :, None], 3, axis=2)


def sample_batch(
    rng: np.random.Generator, n: int, held_out: bool | None = False, empty_p: float = EMPTY_CAPTION_P
) -> tuple[np.ndarray, list[str]]:
    """``n`` training pairs: images uint8 (n, 64, 64, 3) and captions (about 10% empty)."""
    scenes = [sample_scene(rng, held_out=held_out, empty_p=empty_p) for _ in range(n)]
    return np.stack([render(s) for s in scenes]), [s.caption for s in scenes]

"""The distribution measures of TOY_WORLD.md: a small frozen CNN trained once on real renders
(weights shipped beside this file, checksum checked at load), the Frechet distance of its features
(an FID stand-in), k-NN precision/recall (Kynkaanniemi et al. 2019), and sketch IoU.

Train the network (once; the checksum below then changes in the same commit):
    python -m sprint_desktop.distill.features --train
"""

from __future__ import annotations

import hashlib
import sys
from collections import deque
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .world import COLORS, SHAPES, Scene, Shape, render, sample_scene, shape_mask

WEIGHTS = Path(__file__).with_name("assets") / "feature_net.safetensors"
WEIGHTS_SHA256 = "e57299679af42870e7a7740dd5b2d9106f7b3666886b750eb51ec3a9480a432d"
PAIRS = [(c, s) for c in COLORS for s in SHAPES]


class FeatureNet(nn.Module):
    """64 px image -> 128-d feature; trained to tell which colour-shape pairs (and how many) it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(64, 128, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(128, 128, 3, 1, 1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(128, len(PAIRS) + 5)  # pair presence + count 0..4

    def features(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            return (
                torch.cat([self.body(x[i : i + 256]) for i in range(0, len(x), 256)])
                .numpy()
                .astype(np.float64)
            )


def _targets(scenes: list) -> tuple[torch.Tensor, torch.Tensor]:
    presence = torch.zeros(len(scenes), len(PAIRS))
    counts = torch.zeros(len(scenes), dtype=torch.long)
    for i, s in enumerate(scenes):
        for o in s.objects:
            presence[i, PAIRS.index((o.color, o.shape))] = 1
        counts[i] = len(s.objects)
    return presence, counts


def train_feature_net(iters: int = 800, batch: int = 64, seed: int = 0) -> FeatureNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = FeatureNet()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    for step in range(iters):
        scenes = [sample_scene(rng, held_out=None) for _ in range(batch)]
        x = torch.from_numpy(np.stack([render(s) for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
        presence, counts = _targets(scenes)
        out = net.head(net.body(x))
        loss = nn.functional.binary_cross_entropy_with_logits(out[:, : len(PAIRS)], presence)
        loss = loss + nn.functional.cross_entropy(out[:, len(PAIRS) :], counts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1} loss {loss.item():.4f}", file=sys.stderr)
    return net.eval()


def load_feature_net() -> FeatureNet:
    """The shipped network; refuses weights whose checksum is not the recorded one."""
    from safetensors.torch import load_file

    digest = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise RuntimeError(f"{WEIGHTS} has sha256 {digest}, expected {WEIGHTS_SHA256}: retrain or restore it")
    net = FeatureNet()
    net.load_state_dict(load_file(WEIGHTS))
    return net.eval()


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) of two feature sets (N, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = _sqrtm_psd(s_a)
    cross = _sqrtm_psd(root @ s_b @ root)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(cross))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Share of fake samples inside the real k-NN manifold (precision) and of real inside the fake one."""

    def radii(x: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]

    def coverage(ref: np.ndarray, query: np.ndarray) -> float:
        r = radii(ref)
        d = np.linalg.norm(query[:, None] - ref[None], axis=-1)
        return float((d <= r[None]).any(axis=1).mean())

    return coverage(real, fake), coverage(fake, real)


def _dilate(mask: np.ndarray, n: int) -> np.ndarray:
    for _ in range(n):
        p = np.pad(mask, 1)
        mask = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return mask


def sketch_fill(sketch: np.ndarray, close: int = 3) -> np.ndarray:
    """The region a sketch encloses: strokes dilated by ``close`` px (sealing the small gaps a hand
    leaves), every pixel then unreachable from the border, eroded back by ``close`` px. bool (H, W)."""
    dark = np.asarray(sketch)[..., 0] < 128
    sealed = _dilate(dark, close)
    h, w = sealed.shape
    outside = np.zeros_like(sealed)
    queue = deque((r, c) for r in range(h) for c in (0, w - 1) if not sealed[r, c])
    queue.extend((r, c) for c in range(w) for r in (0, h - 1) if not sealed[r, c])
    for r, c in queue:
        outside[r, c] = True
    while queue:
        r, c = queue.popleft()
        for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= rr < h and 0 <= cc < w and not sealed[rr, cc] and not outside[rr, cc]:
                outside[rr, cc] = True
                queue.append((rr, cc))
    return ~_dilate(outside, close)


def region_iou(region: np.ndarray, image: np.ndarray) -> float:
    """IoU between a region (bool H x W) and the generated image's shape pixels (judge colours)."""
    from .judge import color_labels

    b = color_labels(np.asarray(image)) >= 0
    union = (region | b).sum()
    return float((region & b).sum() / union) if union else 1.0


def scene_region(scene: Scene | tuple[Shape, ...], size: int = 64) -> np.ndarray:
    """The exact region a world sketch traces: the union of its scene's shape masks."""
    objects = scene.objects if isinstance(scene, Scene) else scene
    region = np.zeros((size, size), dtype=bool)
    for obj in objects:
        region |= shape_mask(obj, size)
    return region


def sketch_iou(sketch: np.ndarray, image: np.ndarray, scene: Scene | None = None) -> float:
    """Sketch alignment: IoU of the generated shapes with the region the sketch implies, taken from
    the scene the sketch was drawn from when known (evaluation), else filled from its strokes."""
    size = np.asarray(image).shape[0]
    if scene is not None:
        return region_iou(scene_region(scene, size), image)
    if sketch.shape[0] != size:
        from PIL import Image

        sketch = np.asarray(
            Image.fromarray(np.asarray(sketch, np.uint8)).resize((size, size), Image.Resampling.BOX)
        )
    return region_iou(sketch_fill(sketch), image)


if __name__ == "__main__" and "--train" in sys.argv:
    from safetensors.torch import save_file

    net = train_feature_net()
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, WEIGHTS)
    print(hashlib.sha256(WEIGHTS.read_bytes()).hexdigest())

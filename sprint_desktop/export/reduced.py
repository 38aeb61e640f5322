"""The published SANA-Sprint architecture with its layers and widths cut: the same component classes
and config fields (Gemma-2 with soft-capping and a 256-wide head, the transformer's 32 latent
channels, guidance embedding and RMS qk-norm, a DC-AE with ResBlocks, EfficientViT blocks and RMS
norms, a Sprint ControlNet), random seeded weights, a few MB on disk. Tests, the bundle's smoke test
and the loopback hub use it to run the weight-free graph path end to end in seconds.

Two checkpoints made with different seeds have the same configs, so graphs exported from one bind
to the other's weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..formats.architectures import reduced_configs
from .random_weights import build_pipeline


def reduced_pipeline(seed: int = 0, controlnet: bool = True) -> Any:
    """A `SanaSprintPipeline` (and, with ``controlnet``, a 2-block ControlNet as ``.controlnet``)."""
    import torch

    pipeline = build_pipeline(reduced_configs(), seed=seed)
    pipeline.controlnet = None
    if controlnet:
        from ..engine.controlnet import SprintControlNetModel

        torch.manual_seed(seed + 3)
        net = SprintControlNetModel.from_transformer(pipeline.transformer, 2)
        for block in net.controlnet_blocks:
            torch.nn.init.normal_(block.weight, std=0.5)
        torch.nn.init.normal_(net.input_block.weight, std=0.5)
        pipeline.controlnet = net
    return pipeline


def save_reduced(path: str | Path, seed: int = 0, controlnet: bool = True) -> Path:
    """Save `reduced_pipeline` in diffusers layout (safetensors, ``controlnet/`` when it has one)."""
    path = Path(path)
    pipeline = reduced_pipeline(seed, controlnet)
    net = pipeline.controlnet
    del pipeline.controlnet
    pipeline.save_pretrained(path, safe_serialization=True)
    if net is not None:
        net.save_pretrained(path / "controlnet")
    return path

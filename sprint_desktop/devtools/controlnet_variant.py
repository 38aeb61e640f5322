"""A model folder whose ControlNet has another number of blocks, for timing: the Sprint-Shapes
ControlNet has half the transformer's blocks (4 of 8) and the campaign's retrained one will have 2,
so ``sprint bench --control-layers 2`` measures that one's cost before it exists. The blocks are
copied from the model's own transformer (`SprintControlNetModel.from_transformer`, zero-initialised
outputs), so the images are the plain model's: the numbers are costs, not quality."""

from __future__ import annotations

import shutil
from pathlib import Path


def with_controlnet_blocks(model: Path, layers: int, out: Path) -> Path:
    """Copy ``model`` to ``out`` with a ControlNet of ``layers`` blocks made from its transformer."""
    from diffusers import SanaTransformer2DModel

    from ..core.errors import SprintError
    from ..engine.controlnet import SprintControlNetModel

    transformer = SanaTransformer2DModel.from_pretrained(model / "transformer")
    depth = int(transformer.config.num_layers)
    if not 1 <= layers <= depth:
        raise SprintError(
            f"--control-layers must be 1-{depth} for this model (its transformer has {depth} blocks)"
        )
    shutil.copytree(model, out, ignore=shutil.ignore_patterns("onnx", "controlnet", "*.png", "__pycache__"))
    SprintControlNetModel.from_transformer(transformer, layers).save_pretrained(out / "controlnet")
    return out

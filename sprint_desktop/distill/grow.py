"""Deepen a SANA transformer without changing what it computes (Net2DeeperNet: Chen, Goodfellow &
Shlens 2016, "Net2Net: Accelerating Learning via Knowledge Transfer", Sec. 3.2).

A new block is a copy of the block before it whose three residual branches (self-attention,
cross-attention, feed-forward) end in zero: SANA's block adds each branch's output to its input
(``x + gate * attn(x)``, ``x + cross(x)``, ``x + gate * ff(x)``), so with the branches' output
projections at zero the block is the identity, and the deeper model is equal to the original at
every input. The zeroed projections still get gradients, so the new blocks learn from the first
step. A one-step student gets more depth than its teacher this way and starts where the teacher is.
"""

from __future__ import annotations

from typing import Any

import torch

# the last layer of each residual branch of a `SanaTransformerBlock`
BRANCH_OUTPUTS = (
    "attn1.to_out.0.weight",
    "attn1.to_out.0.bias",
    "attn2.to_out.0.weight",
    "attn2.to_out.0.bias",
    "ff.conv_point.weight",
    "ff.conv_point.bias",
)


def block_order(num_layers: int, every: int) -> list[tuple[int, bool]]:
    """(source block, is a new identity block) for the deepened stack: a new block after every
    ``every`` original ones."""
    if every < 1:
        raise ValueError(f"a new block after every {every} blocks: it must be at least 1")
    order: list[tuple[int, bool]] = []
    for i in range(num_layers):
        order.append((i, False))
        if (i + 1) % every == 0:
            order.append((i, True))
    return order


def deeper(transformer: Any, every: int) -> Any:
    """A `SanaTransformer2DModel` with an identity block inserted after every ``every`` blocks of
    ``transformer`` (so ``num_layers * (1 + 1/every)`` blocks), equal to it at every input."""
    from diffusers import SanaTransformer2DModel

    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    order = block_order(config["num_layers"], every)
    like = next(transformer.parameters())
    grown: Any = SanaTransformer2DModel(**{**config, "num_layers": len(order)})
    grown = grown.to(like.device)
    state = {k: v for k, v in transformer.state_dict().items() if not k.startswith("transformer_blocks.")}
    for j, (i, new) in enumerate(order):
        for key, value in transformer.transformer_blocks[i].state_dict().items():
            zero = new and key in BRANCH_OUTPUTS
            state[f"transformer_blocks.{j}.{key}"] = torch.zeros_like(value) if zero else value.clone()
    grown.load_state_dict(state, strict=True)  # copies the values in, in the original's dtype
    return grown if like.dtype == torch.float32 else grown.to(dtype=like.dtype)

"""fp16 weights with fp32 islands: an fp32 ONNX graph rewritten so that only the weight products run
in fp16 (issue #12 item 4, for the Gemma-2 text encoder, whose activations overflow fp16).

The nodes that stay in fp16 are the ones on a weight's path: a weight initializer, the Transpose /
Cast / Reshape nodes between it and its product, the MatMul or Gemm that multiplies it, and the
Gather that looks up the embedding. Everything else (norms, soft-capping, softmax, the residual
stream, the attention products of two activations) stays fp32, with Cast nodes at each boundary
(onnxruntime's `float16.convert_float_to_float16`, given every other node as blocked). The weights
then take half the bytes; the graph's inputs and outputs keep their fp32 types.

Works on a graph whose weights are external and not loaded (only their ``data_type`` changes; the
caller lays out the ``.weights`` file afterwards), so it costs no memory for the weights.
"""

from __future__ import annotations

from typing import Any

WEIGHT_PATH_OPS = frozenset({"Transpose", "Cast", "Reshape", "Identity"})
"""Ops that only move a weight on its way to a product."""
PRODUCT_OPS = frozenset({"MatMul", "Gemm"})


def fp16_nodes(model: Any, weights: set[str]) -> set[str]:
    """Names of the nodes that run in fp16: products with a weight operand, the embedding Gather,
    and the weight-moving nodes feeding them."""
    on_path = set(weights)
    movers: dict[str, str] = {}
    changed = True
    while changed:  # weight -> Transpose -> Cast ... : follow the chain whatever the node order
        changed = False
        for node in model.graph.node:
            if node.op_type in WEIGHT_PATH_OPS and node.input and node.input[0] in on_path:
                for out in node.output:
                    if out not in on_path:
                        on_path.add(out)
                        movers[out] = node.name
                        changed = True
    keep: set[str] = set()
    for node in model.graph.node:
        operands = node.input[:2]
        if node.op_type in PRODUCT_OPS and any(i in on_path for i in operands):
            keep.add(node.name)
            keep.update(movers[i] for i in operands if i in movers)
        elif node.op_type == "Gather" and node.input and node.input[0] in weights:
            keep.add(node.name)
    return keep


def to_fp16_islands(model: Any, weights: set[str]) -> Any:
    """``model`` (fp32, weights external) with the products of ``weights`` in fp16 and the rest in
    fp32; returns the converted model (the same object, changed in place by the converter)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_island_{i}"
        seen.add(node.name)
    keep = fp16_nodes(model, weights)
    blocked = [n.name for n in model.graph.node if n.name not in keep]
    return convert_float_to_float16(model, keep_io_types=True, op_block_list=[], node_block_list=blocked)

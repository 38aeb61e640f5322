"""`sprint export-onnx --graph-only`: the graphs of `onnx_export` with no weights in them.

Each graph is exported by the same wrappers and checked against PyTorch the same way as a full
export (`onnx_export.export_jobs`, `golden_check`), then every initializer that holds a tensor of
the model's safetensors is turned into an external initializer pointing into ``<graph>.weights``
at a fixed offset, and the graph's record (`graph_library`) lists its source: component, key,
shape, source dtype, graph dtype and transform. The ``.weights`` file is not written here; the
binder makes it from the user's own checkpoint. Tensors that are not weights (buffers computed from
the config, such as rotary frequencies) stay inside the graph.

Export details that make the mapping exact:
- ``keep_initializers_as_inputs=True`` while exporting: the TorchScript exporter then keeps one
  initializer per parameter, named as the parameter, instead of merging parameters whose values
  happen to be equal (freshly initialised norms are) under one name; the inputs it adds for them
  are removed again afterwards.
- ``do_constant_folding=False``: no weight is pre-transposed or pre-combined into a new tensor;
  ONNX Runtime folds those when it opens the graph. So every transform is the identity plus a cast.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import SprintError
from .cache import file_sha256
from .graph_library import GRAPH_FORMAT, SOURCE_COMPONENT, graph_configs, graph_key, normalise_config
from .onnx_export import OPSET, export_jobs, golden_check, normalise_transposes, own_latent, traced_pos_embed
from .random_weights import published_pipeline

ProgressFn = Callable[[str, int, int], None]

PRECISIONS = {
    "fp32": {"text_encoder": "fp32", "transformer": "fp32", "vae": "fp32"},
    "fp16": {"text_encoder": "fp32", "transformer": "fp16", "vae": "fp32"},
    "fp16-all": {"text_encoder": "fp16", "transformer": "fp16", "vae": "fp32"},
    "fp16-islands": {"text_encoder": "fp16-islands", "transformer": "fp16", "vae": "fp32"},
}
"""Per-component dtypes of a graph set. fp16 runs the transformer (and ControlNet) in fp16; the
Gemma-2 text encoder stays fp32 (its activations overflow fp16; see docs/BENCHMARKS.md) and the
DC-AE too (the PyTorch backend keeps it out of fp16 for the same reason). "fp16-islands" is the
text encoder exported in fp32, then only its weight products turned to fp16 (`fp16_islands`)."""

ARCH_TRACE_LATENT = 8
"""Latent size (8 x 8: 256 px) the published architectures are traced at (`export_arch_graphs`);
the graphs take any size."""

ALIGN = 64
BIG_ALIGN = 4096
"""Offsets in a ``.weights`` file: 4 KiB for tensors of 64 KiB or more (ONNX Runtime can map
page-aligned tensors instead of copying them), 64 bytes for the rest."""

MAX_INLINE_BYTES = 64 << 20
"""More tensor bytes than this left in a graph means a weight was baked in (the published
architectures' graphs keep a few MB: rotary frequencies, masks, shapes)."""

ONNX_DTYPE_NAMES = {1: "float32", 10: "float16", 16: "bfloat16", 7: "int64", 6: "int32", 9: "bool"}


def component_configs(engine: Any) -> dict[str, dict[str, Any]]:
    """`graph_library.graph_configs` of a loaded `TorchEngine`, from its modules' configs as they
    would be written to config.json."""

    def cfg(module: Any) -> dict[str, Any]:
        config = module.config
        data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        return normalise_config(json.loads(json.dumps(data, default=_json_default)))

    return graph_configs(
        cfg(engine.text_encoder),
        cfg(engine.transformer),
        cfg(engine.vae),
        cfg(engine.controlnet) if engine.controlnet is not None else None,
        float(engine.sigma_d),
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def apply_precision(engine: Any, precision: str) -> dict[str, str]:
    if precision not in PRECISIONS:
        raise SprintError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtypes = PRECISIONS[precision]
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "fp16-islands": torch.float32}
    for module, dtype in (
        (engine.text_encoder, dtypes["text_encoder"]),
        (engine.transformer, dtypes["transformer"]),
        (engine.controlnet, dtypes["transformer"]),
        (engine.vae, dtypes["vae"]),
    ):
        if module is not None and module.dtype != torch_dtype[dtype]:
            module.to(torch_dtype[dtype])
    return dtypes


def export_graphs(
    engine: Any,
    out: Path,
    precision: str = "fp32",
    check: bool = True,
    progress: ProgressFn | None = None,
    only: tuple[str, ...] | None = None,
    model_folder: Path | None = None,
    trace_latent: int | None = None,
) -> list[Path]:
    """Export the weight-free graphs of a loaded `TorchEngine` into the library folder ``out``
    (graphs already there, made for the same configs, are kept); return the graph files.

    ``check=False`` skips the comparison with PyTorch (for published architectures built with
    placeholder weights, whose outputs mean nothing; the reduced architectures in the tests check
    the same code). ``only`` limits the export to some graphs. ``trace_latent``: the latent size
    to trace at (`onnx_export.export_jobs`)."""
    dtypes = apply_precision(engine, precision)
    configs = component_configs(engine)
    jobs, h, w = export_jobs(engine, precision, trace_latent)
    own = own_latent(engine)  # the model's own latent size: checked too when traced smaller
    chi = list(engine.chi_lines)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (name, module, args, inputs, outputs, axes, golden_inputs) in enumerate(jobs):
        if only and name not in only:
            continue
        stem = graph_key(name, configs[name], precision, OPSET)
        if (out / f"{stem}.json").is_file() and (out / f"{stem}.onnx").is_file():
            written.append(out / f"{stem}.onnx")
            continue
        if progress:
            progress(name, i, len(jobs))
        with tempfile.TemporaryDirectory(prefix=".graph-", dir=out) as tmp:
            full = Path(tmp) / "full.onnx"
            with torch.no_grad(), traced_pos_embed(module):
                torch.onnx.export(
                    module.eval(),
                    args,
                    str(full),
                    dynamo=False,
                    opset_version=OPSET,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes=axes,
                    external_data=True,
                    do_constant_folding=False,
                    keep_initializers_as_inputs=True,
                )
            _drop_initializer_inputs(full)
            normalise_transposes(full)
            if check:
                golden_check(
                    full,
                    module,
                    inputs,
                    [golden_inputs(1, h, w), golden_inputs(2, h + 2, w * 2 if w < 64 else w)]
                    + ([golden_inputs(1, own, own)] if own != h else []),
                    tol=5e-2 if precision.startswith("fp16") else 1e-3,
                )
            source: Any = module.m
            component = SOURCE_COMPONENT[name]
            files = _source_files(model_folder / component) if model_folder is not None else {}
            islands = dtypes.get(name) == "fp16-islands"
            record = _strip_weights(full, out / f"{stem}.onnx", source, files, islands)
        record.update(
            format=GRAPH_FORMAT,
            name=stem,
            component=name,
            source_component=component,
            configs=configs[name],
            precision=precision,
            opset=OPSET,
            inputs=inputs,
            outputs=outputs,
            torch=torch.__version__,
            checked_against_pytorch=check,
            graph_size=(out / f"{stem}.onnx").stat().st_size,
            graph_sha256=file_sha256(out / f"{stem}.onnx"),
        )
        if name == "text_encoder":
            record["chi_lines"] = chi
        tmp_record = out / f".{stem}.json.tmp"
        tmp_record.write_text(json.dumps(record, indent=1))
        tmp_record.replace(out / f"{stem}.json")  # the record last: a graph without one is ignored
        written.append(out / f"{stem}.onnx")
    if progress:
        progress("done", len(jobs), len(jobs))
    return written


def _drop_initializer_inputs(path: Path) -> None:
    """Remove the graph inputs ``keep_initializers_as_inputs`` added for the initializers (they
    would let a caller override weights and stop ONNX Runtime from folding them)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = {i.name for i in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    onnx.save(model, str(path))


def _source_files(folder: Path) -> dict[str, tuple[str, str]]:
    """key -> (safetensors file name, stored dtype) of a component folder the graphs come from."""
    from .binder import safetensors_index

    return {k: (t.file.name, t.dtype) for k, t in safetensors_index(folder).items()}


def _strip_weights(
    full: Path,
    graph: Path,
    source: torch.nn.Module,
    files: dict[str, tuple[str, str]],
    fp16_islands: bool = False,
) -> dict[str, Any]:
    """Write ``graph``: ``full`` with every initializer that is one of ``source``'s saved tensors
    (its state dict) made external, at an offset in ``<graph>.weights``; return the record's
    initializer list and the ``.weights`` size. ``fp16_islands``: the weight products in fp16
    first (`fp16_islands.to_fp16_islands`)."""
    import onnx

    model = onnx.load(str(full), load_external_data=False)
    saved = {k: v for k, v in source.state_dict().items()}
    constants = [a.t for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
    not_weights = [i for i in model.graph.initializer if _key(i.name) not in saved]
    for tensor in [*not_weights, *constants]:  # tensors that are not weights go inside the graph, and so
        if _external(tensor):  # do Constant nodes' values the exporter wrote out (published widths)
            onnx.external_data_helper.load_external_data_for_tensor(tensor, str(full.parent))
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    if fp16_islands:
        from .fp16_islands import to_fp16_islands

        weights = {i.name for i in model.graph.initializer if _key(i.name) in saved}
        model = to_fp16_islands(model, weights)
    data_file = graph.with_suffix(".weights").name
    entries = []
    offset = 0
    seen = set()
    for init in model.graph.initializer:
        key = _key(init.name)
        tensor = saved.get(key)
        if tensor is None:
            continue
        shape = [int(d) for d in init.dims]
        if shape != list(tensor.shape):
            raise SprintError(
                f"export: {init.name} has shape {shape} in the graph, {list(tensor.shape)} in the model"
            )
        graph_dtype = ONNX_DTYPE_NAMES.get(init.data_type, str(init.data_type))
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(graph_dtype).itemsize
        align = BIG_ALIGN if nbytes >= 65536 else ALIGN
        offset = -(-offset // align) * align
        init.ClearField("raw_data")
        for field in ("float_data", "int32_data", "int64_data", "double_data"):
            init.ClearField(field)
        del init.external_data[:]
        for k, v in (("location", data_file), ("offset", str(offset)), ("length", str(nbytes))):
            entry = init.external_data.add()
            entry.key, entry.value = k, v
        init.data_location = onnx.TensorProto.EXTERNAL
        entries.append(
            {
                "name": init.name,
                "key": key,
                # where it was in the checkpoint the graph was made from (None: placeholder weights);
                # any float dtype binds, in any file of the component's folder
                "source_file": files.get(key, (None, None))[0],
                "source_dtype": files.get(key, (None, None))[1],
                "shape": shape,
                "dtype": graph_dtype,
                "transform": "cast",  # to "dtype"; no transpose or other change (no constant folding)
                "offset": offset,
                "length": nbytes,
            }
        )
        seen.add(key)
        offset += nbytes
    _check_only_weights_external(model, data_file, graph.name)
    inline = _inline_bytes(model)
    if inline > MAX_INLINE_BYTES:
        raise SprintError(
            f"export: {graph.name} still holds {inline:,} bytes of tensors that are not the model's "
            "weights (a weight folded into a constant?)"
        )
    onnx.save(model, str(graph))
    return {
        "initializers": entries,
        "unused_keys": sorted(set(saved) - seen),  # e.g. the VAE encoder's weights in the decoder graph
        "weights_file": data_file,
        "weights_size": offset,
        "inline_bytes": inline,
    }


def _check_only_weights_external(model: Any, data_file: str, name: str) -> None:
    """Every external tensor of the finished graph must point into its ``.weights`` file: any other
    file would not exist once bound (a Constant's value written out by the exporter did, at the
    published widths, and ONNX Runtime refused the graph)."""
    import onnx

    attrs = [a.t for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
    for tensor in [*model.graph.initializer, *attrs]:
        if _external(tensor):
            where = {e.key: e.value for e in tensor.external_data}.get("location")
            if where != data_file:
                raise SprintError(f"export: {name} refers to {where!r} for {tensor.name or 'a constant'}")


def _key(name: str) -> str:
    """The state-dict key of an initializer (the export wrappers hold the module as ``m``)."""
    return name[2:] if name.startswith("m.") else name


def _external(init: Any) -> bool:
    import onnx

    return bool(init.data_location == onnx.TensorProto.EXTERNAL)


def _inline_bytes(model: Any) -> int:
    """Bytes of the tensors left inside the graph: initializers that are not weights and the
    values of Constant nodes (config-derived buffers, shapes, scalars)."""
    import onnx

    total = sum(
        len(i.raw_data) for i in model.graph.initializer if i.data_location != onnx.TensorProto.EXTERNAL
    )
    for node in model.graph.node:
        if node.op_type == "Constant":
            total += sum(len(a.t.raw_data) for a in node.attribute if a.name == "value")
    return total


def export_model_graphs(
    model: str | Path,
    out: Path,
    precision: str = "fp32",
    progress: ProgressFn | None = None,
    check: bool = True,
    only: tuple[str, ...] | None = None,
    trace_latent: int | None = None,
) -> list[Path]:
    """`export_graphs` of a model folder, checked against PyTorch unless ``check`` is False."""
    from ..engine.torch_backend import TorchEngine

    engine = TorchEngine(model, device="cpu", dtype="fp32", prefix_cache=False)
    engine.load()
    return export_graphs(
        engine,
        out,
        precision,
        check=check,
        progress=progress,
        only=only,
        model_folder=engine.model_path,
        trace_latent=trace_latent,
    )


def export_arch_graphs(
    arch: str,
    out: Path,
    precision: str = "fp16",
    progress: ProgressFn | None = None,
    only: tuple[str, ...] | None = None,
) -> list[Path]:
    """`export_graphs` of a published architecture (`random_weights`) built here with placeholder
    weights: the modules are made without allocating their parameters, then every parameter becomes
    a view into one shared buffer of random numbers (at its own offset, so no two are equal). Memory
    is the largest tensor (Gemma-2's 256000 x 2304 embedding, 2.4 GB) plus what a precision cast
    makes, not the 10 GB of a real fp32 Gemma-2; the outputs mean nothing, so no PyTorch check."""
    from ..engine.torch_backend import TorchEngine

    with _parameters_on_meta():
        pipeline = published_pipeline(arch)
    _placeholder_weights([pipeline.text_encoder, pipeline.transformer, pipeline.vae])
    engine = TorchEngine(Path(arch), device="cpu", dtype="fp32", prefix_cache=False)
    engine._setup(
        pipeline,
        {},
        device=torch.device("cpu"),
        dtypes=dict.fromkeys(("transformer", "text_encoder", "vae"), torch.float32),
    )
    return export_graphs(
        engine, out, precision, check=False, progress=progress, only=only, trace_latent=ARCH_TRACE_LATENT
    )


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Modules made inside get their parameters on the meta device (no memory, no init); buffers
    (rotary frequencies) are computed as usual. What `accelerate.init_empty_weights` does."""
    original = torch.nn.Module.register_parameter

    def register(self: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        original(self, name, param)
        if param is not None:
            self._parameters[name] = torch.nn.Parameter(param.to("meta"), requires_grad=False)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def _placeholder_weights(modules: list[torch.nn.Module]) -> None:
    params = [
        (m, n, p)
        for module in modules
        for m in module.modules()
        for n, p in m._parameters.items()
        if p is not None
    ]
    largest = max(p.numel() for _, _, p in params)
    generator = torch.Generator().manual_seed(0)
    pool = torch.randn(largest + len(params), generator=generator) * 0.02
    for i, (m, n, p) in enumerate(params):
        m._parameters[n] = torch.nn.Parameter(pool[i : i + p.numel()].view(p.shape), requires_grad=False)

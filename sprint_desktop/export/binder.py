"""Bind weight-free ONNX graphs (`graph_library`) to a model's own safetensors: numpy only, no torch.

`bind` checks every source tensor first (the file is whole, every key the graphs need is there and
none is left over, shapes and dtypes are right) and refuses with the key named before anything is
written or ONNX Runtime opens a graph. Then it writes, in a temporary folder of the user cache:
copies of the graphs (after checking each against its record's sha256), one ``<graph>.weights``
file per graph with every tensor at the offset the graph expects (bf16 / fp16 / fp32 converted to
the graph's dtype in numpy), the tokenizer files, and a manifest in the export format
`OnnxEngine` reads. A free-space check comes first; the folder is renamed into place only when
complete, so a full disk, a Ctrl+C or a kill -9 never leaves a folder that is used. The work folder
is named for its process (`work_dirs`): the next binding removes it once that process is gone, and
never the folder of a binding still running. Two processes binding the same model at once each
write their own; the first renamed into place is kept and the other one uses it.

A bound folder is keyed by the model's weights like an export: `find_bound` accepts it when the
fast fingerprint (sizes and modification times) matches, or, when that fails, when the weights'
content hash recorded at binding does (a copy that lost its times); it then records the new fast
fingerprint so the next launch is quick again. Every load re-checks the graph copies' sha256
(small files), so a changed graph is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..core.errors import ModelLoadError
from ..formats.model_folder import check_safetensors_file, inspect_model_folder, read_json_object
from .cache import EXPORT_FORMAT, cache_root, file_sha256, model_content_fingerprint, model_fingerprint
from .graph_library import find_graphs, verify_graph
from .work_dirs import make_work_dir, publish, remove_stale

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): stage "binding <graph>" with MiB written so far, or "done"."""

MODEL_SETTINGS_FILE = "sprint_desktop.json"  # the same file `TorchEngine` reads
DEFAULT_MAX_SEQUENCE_LENGTH = 300  # `torch_backend.DEFAULT_MAX_SEQUENCE_LENGTH`
FREE_SPACE_MARGIN = 256 << 20
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}
"""Source dtypes a float initializer may come from (bf16 is read as its raw 16 bits)."""
WORK_PREFIX = ".bind-"
"""Work folders of bindings under way (or killed): never taken for a bound folder."""
KEY_PREFIXES = ("", "model.")
"""A text encoder saved from a ``*ForCausalLM`` keeps its base model's tensors under ``model.``."""


def bound_root() -> Path:
    return cache_root() / "bound"


@dataclass(frozen=True)
class SourceTensor:
    file: Path
    key: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    """Byte offset of the data in the file."""
    end: int


def safetensors_index(folder: Path) -> dict[str, SourceTensor]:
    """Every tensor of the ``*.safetensors`` files in ``folder``, from their headers (each file is
    checked whole first: a truncated download is refused here, with its name)."""
    index: dict[str, SourceTensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(file)
        with file.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            begin, end = meta["data_offsets"]
            index[key] = SourceTensor(
                file, key, str(meta["dtype"]), tuple(meta["shape"]), 8 + n + begin, 8 + n + end
            )
    return index


@dataclass(frozen=True)
class Plan:
    """What binding will do: per graph, its file, record and the source of each initializer."""

    model: Path
    precision: str
    graphs: dict[str, tuple[Path, dict[str, Any]]]
    sources: dict[str, list[SourceTensor]]

    @property
    def weights_bytes(self) -> int:
        return sum(int(record["weights_size"]) for _, record in self.graphs.values())

    @property
    def graph_names(self) -> list[str]:
        return sorted(record["name"] for _, record in self.graphs.values())


def plan_binding(
    model: str | Path,
    precision: str = "fp32",
    dirs: list[Path] | None = None,
    components: tuple[str, ...] | None = None,
) -> Plan:
    """Find the graphs for ``model`` (all, or ``components``: measurements) and check its weights
    against them; raises `ModelLoadError` naming the first problem (no graph, a missing / extra key,
    a shape or dtype)."""
    folder = inspect_model_folder(model).path
    graphs = find_graphs(folder, precision, dirs, components)
    for graph, record in graphs.values():
        verify_graph(graph, record)
    indexes: dict[str, dict[str, SourceTensor]] = {}
    expected: dict[str, set[str]] = {}
    sources: dict[str, list[SourceTensor]] = {}
    for component, (_, record) in graphs.items():
        source = record["source_component"]
        if source not in indexes:
            indexes[source] = safetensors_index(folder / source)
        index = indexes[source]
        found = []
        for entry in record["initializers"]:
            tensor = _lookup(index, entry["key"])
            if tensor is None:
                raise ModelLoadError(
                    f"the {source} weights of {folder.name} have no tensor {entry['key']!r} "
                    f"(needed by the {component} graph): the download may be from another model"
                )
            if list(tensor.shape) != list(entry["shape"]):
                raise ModelLoadError(
                    f"{tensor.file.name}: tensor {tensor.key!r} has shape {list(tensor.shape)}, "
                    f"the {component} graph needs {entry['shape']}: the model's architecture differs"
                )
            if tensor.dtype not in SAFETENSORS_DTYPES:
                raise ModelLoadError(
                    f"{tensor.file.name}: tensor {tensor.key!r} is {tensor.dtype}, a float tensor "
                    f"(F32, F16 or BF16) is needed for the {component} graph"
                )
            found.append(tensor)
        sources[component] = found
        keys = expected.setdefault(source, set())
        keys.update(t.key for t in found)
        keys.update(k for key in record.get("unused_keys", []) if (k := _resolve(index, key)) is not None)
    for source, index in indexes.items():
        extra = sorted(set(index) - expected[source])
        if extra:
            raise ModelLoadError(
                f"the {source} weights of {folder.name} hold {len(extra)} tensor(s) the graphs have no place "
                f"for (e.g. {extra[0]!r}): the model's architecture differs from its config.json"
            )
    return Plan(folder, precision, graphs, sources)


def _resolve(index: dict[str, SourceTensor], key: str) -> str | None:
    tensor = _lookup(index, key)
    return tensor.key if tensor is not None else None


def _lookup(index: dict[str, SourceTensor], key: str) -> SourceTensor | None:
    for prefix in KEY_PREFIXES:
        if prefix + key in index:
            return index[prefix + key]
    return None


CHUNK_ELEMENTS = 1 << 24
"""Tensors are read and converted in pieces of this many elements (64 MiB of float32), so binding
Gemma-2's 590M-element embedding needs tens of MB of memory, not GBs. Plain reads, not a memory map:
a mapped file's pages count as the process's memory while mapped (the whole 7 GB checkpoint of
0.6B showed as a 9.4 GB peak RSS)."""


def convert(raw: np.ndarray, source_dtype: str, dtype: str) -> np.ndarray:
    """Raw source elements (bf16 as uint16) as ``dtype`` (float32 / float16), in numpy."""
    value = (raw.astype(np.uint32) << 16).view(np.float32) if source_dtype == "BF16" else raw
    out = value.astype(dtype, copy=False)
    if (
        dtype == "float16"
        and source_dtype != "F16"
        and not np.isfinite(out).all()
        and np.isfinite(value).all()
    ):
        raise OverflowError("values beyond float16's range")
    return out


def tensor_pieces(tensor: SourceTensor, dtype: str, fh: BinaryIO) -> Iterator[np.ndarray]:
    """``tensor`` read from its open file ``fh`` as flat C-contiguous ``dtype`` pieces, in order."""
    source = np.dtype(SAFETENSORS_DTYPES[tensor.dtype])
    count = (tensor.end - tensor.begin) // source.itemsize
    fh.seek(tensor.begin)
    for start in range(0, max(1, count), CHUNK_ELEMENTS):
        n = min(CHUNK_ELEMENTS, count - start)
        data = fh.read(n * source.itemsize)
        if len(data) != n * source.itemsize:
            raise ModelLoadError(
                f"{tensor.file.name} ends inside tensor {tensor.key!r}: the file is truncated"
            )
        try:
            yield np.ascontiguousarray(convert(np.frombuffer(data, source), tensor.dtype, dtype))
        except OverflowError as exc:
            raise ModelLoadError(f"{tensor.file.name}: tensor {tensor.key!r} has {exc}") from None


def read_tensor(tensor: SourceTensor, dtype: str, fh: BinaryIO) -> np.ndarray:
    """``tensor`` from its open file ``fh`` as ``dtype`` (float32 / float16), in its shape."""
    return np.concatenate(list(tensor_pieces(tensor, dtype, fh))).reshape(tensor.shape)


def _chi_lines(plan: Plan) -> list[str]:
    """The instruction lines the text encoder graph was made with (none when the binding leaves the
    text encoder out: ``bind(components=...)`` for a measurement)."""
    entry = plan.graphs.get("text_encoder")
    return list(entry[1].get("chi_lines", [])) if entry is not None else []


def runtime_manifest(model: Path, plan: Plan) -> dict[str, Any]:
    """The fields of an export's manifest that `OnnxEngine` reads, from the model's config files
    (what `TorchEngine` derives from them)."""
    settings_path = model / MODEL_SETTINGS_FILE
    settings = read_json_object(settings_path) if settings_path.is_file() else {}
    transformer = read_json_object(model / "transformer" / "config.json")
    vae = read_json_object(model / "vae" / "config.json")
    scheduler_path = model / "scheduler" / "scheduler_config.json"
    scheduler = read_json_object(scheduler_path) if scheduler_path.is_file() else {}
    vae_scale_factor = 2 ** (len(vae["encoder_block_out_channels"]) - 1)
    patch = int(transformer.get("patch_size", 1))
    side = int(transformer["sample_size"]) * vae_scale_factor
    size = settings.get("default_size", [side, side])
    max_len = int(settings.get("max_sequence_length", DEFAULT_MAX_SEQUENCE_LENGTH))
    use_chi = bool(settings.get("complex_human_instruction", True))
    return {
        "format": EXPORT_FORMAT,
        "model": str(model),
        "model_name": str(settings.get("name", model.name)),
        "precision": plan.precision,
        "chi_lines": _chi_lines(plan) if use_chi else [],
        "max_sequence_length": max_len,
        "sigma_d": float(scheduler.get("sigma_data", 0.5)),
        "guidance_embeds_scale": float(transformer.get("guidance_embeds_scale", 0.1)),
        "vae_scale_factor": vae_scale_factor,
        "patch_size": patch,
        "control_mode": "controlnet" if "controlnet" in plan.graphs else "img2img",
        "scaling_factor": float(vae["scaling_factor"]),
        "info": {
            "default_width": int(size[0]),
            "default_height": int(size[1]),
            "size_multiple": vae_scale_factor * patch,
            "latent_channels": int(transformer["in_channels"]),
            "max_sequence_length": max_len,
        },
    }


def bound_prefix(plan: Plan) -> str:
    graphs = hashlib.sha256("|".join(plan.graph_names).encode()).hexdigest()[:12]
    return f"{plan.model.name}-{plan.precision}-{graphs}"


def find_bound(model: str | Path, precision: str = "fp32", root: Path | None = None) -> Path | None:
    """A complete bound folder of ``model`` as it is now, or None. Graphs must still match their
    records and the model's configs must still match the graphs (the name holds their hashes)."""
    folder = Path(model).expanduser()
    root = root or bound_root()
    candidates = (
        [
            d
            for d in root.glob(f"{folder.name}-{precision}-*")
            if d.is_dir() and (d / "manifest.json").is_file()
        ]
        if root.is_dir()
        else []
    )
    if not candidates:
        return None
    fast = model_fingerprint(folder)
    content: str | None = None
    for d in sorted(candidates, key=_mtime, reverse=True):
        manifest = _good_manifest(d)
        if manifest is None:
            continue
        if manifest.get("fingerprint") == fast:
            return d
        if content is None:
            content = model_content_fingerprint(folder)
        if manifest.get("content_fingerprint") == content:
            manifest["fingerprint"] = fast  # the same bytes, other modification times: fast next time
            with contextlib.suppress(OSError):  # a read-only cache: the content check next time too
                _write_json(d / "manifest.json", manifest)
            return d
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0  # removed meanwhile: tried last, and refused


def _good_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete bound folder (graph copies as recorded, weights of their size)."""
    manifest = _read(folder / "manifest.json")
    if manifest is None or manifest.get("format") != EXPORT_FORMAT or not _bound_files_ok(folder, manifest):
        return None
    return manifest


def _bound_files_ok(folder: Path, manifest: dict[str, Any]) -> bool:
    """Every graph copy has its recorded sha256 and every weights file its recorded size."""
    try:
        for f in manifest["files"]:
            if file_sha256(folder / f["file"]) != f["sha256"]:
                return False
        for w in manifest["weights"]:
            if (folder / w["file"]).stat().st_size != w["size"]:
                return False
    except (OSError, KeyError, TypeError):
        return False
    return True


def bind(
    model: str | Path,
    precision: str = "fp32",
    root: Path | None = None,
    dirs: list[Path] | None = None,
    progress: ProgressFn | None = None,
    components: tuple[str, ...] | None = None,
) -> Path:
    """Bind ``model``'s weights to the installed graphs for it (or reuse an earlier binding);
    return the folder, an export `OnnxEngine` opens."""
    folder = inspect_model_folder(model).path
    root = root or bound_root()
    remove_stale(root, WORK_PREFIX)  # killed bindings' folders first: their space counts as free
    found = find_bound(folder, precision, root) if components is None else None
    if found is not None:
        return found
    plan = plan_binding(folder, precision, dirs, components)
    root.mkdir(parents=True, exist_ok=True)
    need = plan.weights_bytes + FREE_SPACE_MARGIN
    free = shutil.disk_usage(root).free
    if free < need:
        raise ModelLoadError(
            f"binding {folder.name} needs {need / 2**30:.1f} GiB free in {root}, only {free / 2**30:.1f} GiB is: "
            "free some space and try again"
        )
    fingerprint = model_fingerprint(folder)
    work = make_work_dir(root, WORK_PREFIX)
    try:
        manifest = runtime_manifest(folder, plan)
        manifest.update(
            fingerprint=fingerprint,
            bound=True,
            graphs=plan.graph_names,
            files=[],
            weights=[],
        )
        total_mib = max(1, plan.weights_bytes >> 20)
        done = 0
        for component, (graph, record) in plan.graphs.items():
            shutil.copyfile(graph, work / graph.name)
            verify_graph(work / graph.name, record)
            weights = work / record["weights_file"]
            done = _write_weights(
                weights, record, plan.sources[component], component, done, total_mib, progress
            )
            manifest["files"].append(
                {
                    "component": component,
                    "file": graph.name,
                    "size": (work / graph.name).stat().st_size,
                    "sha256": record["graph_sha256"],
                }
            )
            manifest["weights"].append({"file": weights.name, "size": weights.stat().st_size})
        for name in TOKENIZER_FILES:
            src = folder / "tokenizer" / name
            if src.is_file():
                shutil.copyfile(src, work / name)
        if progress:
            progress("hashing the weights", total_mib, total_mib)
        manifest["content_fingerprint"] = model_content_fingerprint(folder)
        if model_fingerprint(folder) != fingerprint:
            raise ModelLoadError(
                f"the weights of {folder.name} changed while they were being bound: try again"
            )
        _write_json(work / "manifest.json", manifest)
        target = publish(
            work,
            root / f"{bound_prefix(plan)}-{fingerprint[:12]}",
            lambda done: (m := _good_manifest(done)) is not None and m.get("fingerprint") == fingerprint,
            WORK_PREFIX,
        )
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise ModelLoadError(f"could not bind {folder.name} in {root}: {exc}") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if progress:
        progress("done", total_mib, total_mib)
    return target


def _write_weights(
    path: Path,
    record: dict[str, Any],
    sources: list[SourceTensor],
    component: str,
    done: int,
    total_mib: int,
    progress: ProgressFn | None,
) -> int:
    """Write ``<graph>.weights``; return the bytes written so far (all graphs)."""
    files: dict[Path, BinaryIO] = {}
    stage = f"binding {component}"
    last_mib = -1
    with path.open("wb") as out, ExitStack() as stack:
        out.truncate(int(record["weights_size"]))
        for entry, tensor in zip(record["initializers"], sources, strict=True):
            if tensor.file not in files:
                files[tensor.file] = stack.enter_context(tensor.file.open("rb"))
            out.seek(int(entry["offset"]))
            written = 0
            for piece in tensor_pieces(tensor, entry["dtype"], files[tensor.file]):
                out.write(memoryview(piece).cast("B"))  # type: ignore[arg-type]
                written += piece.nbytes
                done += piece.nbytes
                if progress and done >> 20 != last_mib:
                    last_mib = done >> 20
                    progress(stage, last_mib, total_mib)
            if written != entry["length"]:
                raise ModelLoadError(f"{tensor.key}: {written} bytes, the graph expects {entry['length']}")
        out.flush()
        os.fsync(out.fileno())
    return done


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, through a temporary file of this process's own (two may rewrite it at once)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)

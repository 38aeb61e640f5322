"""Weight-free ONNX graphs, keyed by the component configs they were made for (pure Python, no torch).

`sprint export-onnx --graph-only` (`graph_only.export_graphs`) writes one graph per component our
ONNX engine runs, with every weight an external initializer that points into a ``<graph>.weights``
file that does not exist yet, plus a record (``<graph>.json``) saying, for each initializer, which
tensor of the diffusers safetensors fills it (component, key, shape, dtype, transform). The binder
(`export.binder`) writes those ``.weights`` files from the user's own safetensors, torch-free.

A graph depends on configs only, never on weights, so one graph serves every checkpoint of its
architecture (fine-tunes too), and components shared by several models (the Gemma-2 text encoder
and the DC-AE of SANA-Sprint 0.6B and 1.6B) are stored once. A library folder holds graphs of any
number of architectures: ``<library>/<component>-<key>.onnx`` and ``.json``.

Which configs a graph was made for (`graph_configs`): the text encoder's for the text encoder, the
VAE's for its decoder and encoder, and for the TrigFlow step (``transformer``) and the ControlNet:
the transformer's and ControlNet's configs, ``sigma_data`` and the number of ControlNet residuals.
Matching (`config_differences`) compares the values of the fields both configs have, after dropping
bookkeeping (`IGNORED_FIELDS`): a config written by another library version may have extra or
missing fields with defaults, while a field that differs changes the graph. Shapes are checked
again, tensor by tensor, when binding.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..core.errors import ModelLoadError
from ..core.paths import project_root, user_cache_dir
from .cache import file_sha256

GRAPH_FORMAT = 1
"""The layout of a graph record (bumped when it changes)."""

GRAPH_COMPONENTS = ("text_encoder", "controlnet", "transformer", "vae_decoder", "vae_encoder")
SOURCE_COMPONENT = {
    "text_encoder": "text_encoder",
    "controlnet": "controlnet",
    "transformer": "transformer",
    "vae_decoder": "vae",
    "vae_encoder": "vae",
}
"""The model folder's component whose safetensors fill each graph's initializers."""

IGNORED_FIELDS = frozenset(
    {
        "architectures",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "use_cache",
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "cache_implementation",
        "output_attentions",
        "output_hidden_states",
    }
)
"""Config fields that do not change a graph (bookkeeping, generation settings); every field whose
name starts with ``_`` (``_class_name``, ``_diffusers_version``, ``_name_or_path``) is dropped too."""

LIBRARY_ENV = "SPRINT_GRAPHS"


def library_dirs() -> list[Path]:
    """Where graph libraries are looked for, in order: ``$SPRINT_GRAPHS`` (``os.pathsep``-separated),
    the graphs shipped with the app (``<app>/graphs``) and the user cache's (``<cache>/graphs``)."""
    import os

    dirs = [Path(p) for p in os.environ.get(LIBRARY_ENV, "").split(os.pathsep) if p]
    return [*dirs, project_root() / "graphs", user_cache_dir() / "graphs"]


def normalise_config(config: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _jsonable(v)
        for k, v in sorted(config.items())
        if not k.startswith("_") and k not in IGNORED_FIELDS
    }


def _jsonable(value: Any) -> Any:
    """Tuples as lists, so a config read back from JSON equals the one in memory."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def read_config(folder: Path) -> dict[str, Any]:
    from ..formats.model_folder import read_json_object

    return normalise_config(read_json_object(folder / "config.json"))


def used_residuals(num_transformer_layers: int, num_controlnet_layers: int) -> int:
    """How many ControlNet residuals the transformer adds: diffusers' `SanaTransformer2DModel` adds
    residual ``j`` after block ``j + 1``, so one after its last block is never used."""
    return min(num_controlnet_layers, num_transformer_layers - 1)


def graph_configs(
    text_encoder: dict[str, Any],
    transformer: dict[str, Any],
    vae: dict[str, Any],
    controlnet: dict[str, Any] | None,
    sigma_data: float,
) -> dict[str, dict[str, Any]]:
    """What each graph depends on, from the normalised component configs."""
    n_res = 0
    if controlnet is not None:
        n_res = used_residuals(int(transformer["num_layers"]), int(controlnet["num_layers"]))
    step: dict[str, Any] = {"transformer": transformer, "sigma_data": float(sigma_data), "residuals": n_res}
    configs = {
        "text_encoder": {"text_encoder": text_encoder},
        "transformer": step,
        "vae_decoder": {"vae": vae},
        "vae_encoder": {"vae": vae},
    }
    if controlnet is not None:
        configs["controlnet"] = {**step, "controlnet": controlnet}
    return configs


def model_graph_configs(model: Path) -> dict[str, dict[str, Any]]:
    """`graph_configs` of a model folder, from its config files alone."""
    from ..formats.model_folder import read_json_object

    scheduler = (
        read_json_object(model / "scheduler" / "scheduler_config.json")
        if (model / "scheduler" / "scheduler_config.json").is_file()
        else {}
    )
    controlnet = (
        read_config(model / "controlnet") if (model / "controlnet" / "config.json").is_file() else None
    )
    return graph_configs(
        read_config(model / "text_encoder"),
        read_config(model / "transformer"),
        read_config(model / "vae"),
        controlnet,
        float(scheduler.get("sigma_data", 0.5)),
    )


def graph_key(component: str, configs: dict[str, Any], precision: str, opset: int) -> str:
    """The file stem of a graph: component name and a hash of what it was made for."""
    blob = json.dumps(
        {
            "component": component,
            "configs": configs,
            "precision": precision,
            "opset": opset,
            "format": GRAPH_FORMAT,
        },
        sort_keys=True,
    )
    return f"{component}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def config_differences(wanted: Any, have: Any, path: str = "") -> list[str]:
    """Fields both sides have whose values differ, as ``path: model X, graphs Y`` lines."""
    if isinstance(wanted, dict) and isinstance(have, dict):
        out = []
        for k in sorted(set(wanted) & set(have)):
            out += config_differences(wanted[k], have[k], f"{path}.{k}" if path else k)
        return out
    if wanted != have and not _same_number(wanted, have):
        return [f"{path}: the model has {wanted!r}, the graph was made for {have!r}"]
    return []


def _same_number(a: Any, b: Any) -> bool:
    return (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and float(a) == float(b)
    )


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != GRAPH_FORMAT:
        return None
    return data


def library_records(dirs: list[Path] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """``(record path, record)`` of every graph in the libraries, in `library_dirs` order."""
    found = []
    for folder in dirs if dirs is not None else library_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                record = read_record(path)
                if record is not None and record.get("component") in GRAPH_COMPONENTS:
                    found.append((path, record))
    return found


def find_graphs(
    model: Path,
    precision: str = "fp32",
    dirs: list[Path] | None = None,
    components: tuple[str, ...] | None = None,
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """For each graph the model needs (or each of ``components``), the first library graph made for
    its configs in ``precision``: ``{component: (graph file, record)}``. Raises `ModelLoadError`
    naming the fields that differ from the closest graph (and how to make graphs) when one is missing."""
    wanted = {k: v for k, v in model_graph_configs(model).items() if components is None or k in components}
    records = library_records(dirs)
    chosen: dict[str, tuple[Path, dict[str, Any]]] = {}
    for component, configs in wanted.items():
        closest: tuple[int, list[str], str] | None = None
        for path, record in records:
            if record["component"] != component or record.get("precision") != precision:
                continue
            diffs = config_differences(configs, record.get("configs", {}))
            if configs.keys() != record.get("configs", {}).keys():
                diffs.append(f"parts: the model has {sorted(configs)}, the graph {sorted(record['configs'])}")
            if not diffs:
                chosen[component] = (path.with_suffix(".onnx"), record)
                break
            if closest is None or len(diffs) < closest[0]:
                closest = (len(diffs), diffs, record.get("name", path.stem))
        if component in chosen:
            continue
        how = (
            f"make them on a machine with PyTorch: sprint export-onnx --graph-only --model {model} "
            f"--precision {precision}"
        )
        if closest is None:
            raise ModelLoadError(
                f"no {precision} ONNX graph for the {component} of {model.name} is installed; {how}"
            )
        shown = "; ".join(closest[1][:4]) + (
            f" (and {len(closest[1]) - 4} more)" if len(closest[1]) > 4 else ""
        )
        raise ModelLoadError(
            f"no ONNX graph matches the {component} of {model.name}: the closest ({closest[2]}) differs in "
            f"{shown}. {how[0].upper()}{how[1:]}"
        )
    return chosen


def verify_graph(graph: Path, record: dict[str, Any]) -> None:
    """The graph file is the one its record was written for (size, sha256): a changed file is refused."""
    try:
        size = graph.stat().st_size
    except OSError:
        raise ModelLoadError(f"ONNX graph missing: {graph}") from None
    if size != record.get("graph_size") or file_sha256(graph) != record.get("graph_sha256"):
        raise ModelLoadError(
            f"the ONNX graph {graph} does not match its record {graph.with_suffix('.json').name} "
            "(changed or damaged): reinstall Sprint Desktop or export the graphs again"
        )

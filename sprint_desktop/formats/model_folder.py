"""Checks a SANA-Sprint model folder (diffusers layout) before any weights are read.

Pure Python (no torch): the ONNX backend and the model store use it too. Every problem becomes a
`ModelLoadError` that names the file and says what to do, instead of a stack trace from deep
inside a loader.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelLoadError
from ..core.files import UnreadableFileError, parse_json, read_bounded_text

PIPELINE_CLASSES = ("SanaSprintPipeline",)
REQUIRED_COMPONENTS = ("tokenizer", "text_encoder", "transformer", "vae", "scheduler")
WEIGHTED_COMPONENTS = ("text_encoder", "transformer", "vae")
ALLOWED_LIBRARIES = ("transformers", "diffusers")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
MAX_CONFIG_BYTES = 16 * 2**20
"""A config JSON is a few KB; larger is not a config (and is not read into memory)."""


@dataclass(frozen=True)
class ModelFolder:
    """A validated model folder: its path and the component classes of its ``model_index.json``."""

    path: Path
    pipeline_class: str
    components: dict[str, tuple[str, str]]

    @property
    def name(self) -> str:
        return self.path.name


def inspect_model_folder(path: str | Path) -> ModelFolder:
    """Validate ``path`` as a SANA-Sprint pipeline folder; raise `ModelLoadError` on any problem."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelLoadError(f"model folder not found: {root}")
    if not root.is_dir():
        raise ModelLoadError(f"model path is a file, not a folder: {root}")
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelLoadError(f"{root} is not a diffusers model folder: model_index.json is missing")
    index = read_json_object(index_path)
    pipeline_class = index.get("_class_name")
    if pipeline_class not in PIPELINE_CLASSES:
        raise ModelLoadError(
            f"{root} holds a {pipeline_class!r} model; Sprint Desktop runs {', '.join(PIPELINE_CLASSES)} models"
        )
    components: dict[str, tuple[str, str]] = {}
    for name in REQUIRED_COMPONENTS:
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise ModelLoadError(f"{index_path} does not declare the {name!r} component")
        library, cls = entry
        if library not in ALLOWED_LIBRARIES:
            raise ModelLoadError(
                f"component {name!r} comes from {library!r}; only transformers and diffusers classes are "
                "loaded (remote code is never run)"
            )
        components[name] = (library, cls)
        folder = root / name
        if not folder.is_dir():
            raise ModelLoadError(f"component folder missing: {folder}")
    for name in WEIGHTED_COMPONENTS:
        check_component_weights(root / name)
    tok = root / "tokenizer"
    if not any((tok / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"tokenizer files missing in {tok} (expected one of {', '.join(TOKENIZER_FILES)})"
        )
    from .config_bounds import check_model_configs

    check_model_configs(root, read_json_object)
    return ModelFolder(path=root, pipeline_class=pipeline_class, components=components)


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``, or `ModelLoadError` saying what is wrong with the file."""
    try:
        data = parse_json(read_bounded_text(path, MAX_CONFIG_BYTES, "config file"), str(path))
    except UnreadableFileError as exc:
        raise ModelLoadError(str(exc)) from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data


def check_component_weights(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"config.json missing in {folder}")
    safetensors = sorted(folder.glob("*.safetensors"))
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if not safetensors and not indexes:
        pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise ModelLoadError(
                f"{folder} has only pickle weights ({', '.join(sorted(pickles))}); Sprint Desktop loads "
                "safetensors only, because pickle files can run code. Convert them to .safetensors first."
            )
        raise ModelLoadError(f"no weights in {folder} (expected *.safetensors)")
    for index_file in indexes:
        try:
            weight_map = read_json_object(index_file)["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"{index_file} is damaged: {exc}") from None
        for shard in shards:
            if not isinstance(shard, str) or shard != Path(shard).name or "\\" in shard:
                raise ModelLoadError(f"{index_file} names a shard outside its folder: {shard!r:.80}")
            if not (folder / shard).is_file():
                raise ModelLoadError(f"weight shard missing: {folder / shard} (listed in {index_file.name})")
    for file in safetensors:
        check_safetensors_file(file)


def safetensors_keys(folder: Path) -> set[str]:
    """Names of all tensors stored in the safetensors files of ``folder`` (headers only)."""
    keys: set[str] = set()
    for file in sorted(folder.glob("*.safetensors")):
        keys.update(k for k in _read_header(file) if k != "__metadata__")
    return keys


def _read_header(path: Path) -> dict:
    with path.open("rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(header_len).decode("utf-8"))


def check_weights_match(component: str, stored: set[str], expected: set[str]) -> None:
    """Fail loudly when a component's stored tensors and its architecture differ (instead of the
    loaders' silent random initialisation of missing weights)."""
    missing = sorted(expected - stored)
    unused = sorted(stored - expected)
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing from the files (e.g. {missing[0]})")
        if unused:
            parts.append(
                f"{len(unused)} stored tensor(s) the architecture has no place for (e.g. {unused[0]})"
            )
        raise ModelLoadError(
            f"the {component} weights do not match its config.json: {'; '.join(parts)}. "
            "The download may be from another model or version."
        )


def check_safetensors_file(path: Path) -> None:
    """Verify a safetensors file's header and that its size matches it (catches truncated downloads)."""
    if not path.is_file():  # a FIFO would block the read below, a device never end
        raise ModelLoadError(f"{path} is not a regular file (a pipe, device or broken link): replace it")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelLoadError(f"{path} is truncated ({size} bytes): download it again")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > min(size - 8, 100_000_000):
                raise ModelLoadError(f"{path} is truncated or not a safetensors file: download it again")
            header = json.loads(fh.read(header_len).decode("utf-8"))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelLoadError(f"{path} has a damaged header: download it again") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path} has a damaged header: download it again")
    data_end = 0
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        try:
            begin, end = meta["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ModelLoadError(f"{path} has a damaged header entry {key!r}: download it again") from None
        data_end = max(data_end, int(end))
    expected = 8 + header_len + data_end
    if size != expected:
        raise ModelLoadError(
            f"{path} is truncated or corrupt: {size:,} bytes on disk, {expected:,} expected. Download it again."
        )


MODEL_SETTINGS_FILE = "sprint_desktop.json"
"""Optional per-model defaults beside model_index.json: ``name``, ``complex_human_instruction``,
``max_sequence_length``, ``default_size`` ([width, height]), ``default_steps`` (what an image gets
unless asked otherwise) and ``refine_steps`` (the model's best step count: what "instant, then
refine" refines the instant image at)."""

FALLBACK_STEPS = 2
"""Steps for a model that does not say (diffusers' ``SanaSprintPipeline`` default)."""
FALLBACK_REFINE_STEPS = 4
"""Refinement steps for a model that does not say: the most a step-adaptive SANA-Sprint samples."""


def read_model_settings(root: Path) -> dict:
    """The model folder's ``sprint_desktop.json`` ({} when it has none; `ModelLoadError` when broken)."""
    path = Path(root) / MODEL_SETTINGS_FILE
    return read_json_object(path) if path.is_file() else {}


@dataclass(frozen=True)
class ModelDefaults:
    """What a model asks for when the user has not said: steps, refinement steps and size."""

    steps: int = FALLBACK_STEPS
    refine_steps: int = FALLBACK_REFINE_STEPS
    size: tuple[int, int] | None = None


def model_defaults(settings: dict) -> ModelDefaults:
    """`ModelDefaults` from a ``sprint_desktop.json`` object; a missing or out-of-range value falls
    back (a hand-edited file must not stop the model from loading)."""
    from ..core.trigflow import MAX_STEPS, MIN_STEPS

    def whole(value: object, low: int, high: int) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        return None

    size = settings.get("default_size")
    sides = [whole(v, 1, 1 << 16) for v in size] if isinstance(size, list) and len(size) == 2 else []
    return ModelDefaults(
        steps=whole(settings.get("default_steps"), MIN_STEPS, MAX_STEPS) or FALLBACK_STEPS,
        refine_steps=whole(settings.get("refine_steps"), MIN_STEPS, MAX_STEPS) or FALLBACK_REFINE_STEPS,
        size=(sides[0], sides[1]) if sides and sides[0] and sides[1] else None,
    )


def read_model_defaults(root: Path) -> ModelDefaults:
    """`model_defaults` of the folder ``root`` (cheap: one small JSON file, no weights)."""
    return model_defaults(read_model_settings(root))

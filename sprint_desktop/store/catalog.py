"""The model catalog (``models/catalog.toml``) and the state of each model on this machine.

States: ``installed`` (a complete, valid folder), ``partial`` (some components missing, as after an
interrupted download), ``corrupt`` (files present but damaged: truncated weights, bad JSON, pickle
weights), ``missing`` (nothing there). Pure Python: the GUI and the CLI both use it.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelLoadError, SprintError
from ..core.paths import project_root, user_data_dir
from ..formats.layout import ALLOW_PATTERNS
from ..formats.model_folder import REQUIRED_COMPONENTS, inspect_model_folder
from .record import record_problem, verify_download

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    title: str
    kind: str  # "embedded" | "hub"
    resolution: int
    download_gb: float
    min_vram_gb: float
    license: str
    license_url: str
    controlnet: bool
    components: tuple[str, ...]
    repo_id: str | None = None
    revision: str = "main"
    path: str | None = None


@dataclass(frozen=True)
class ModelState:
    entry: CatalogEntry
    folder: Path
    state: str
    size_bytes: int
    problem: str | None = None


def catalog_path() -> Path:
    return project_root() / "models" / "catalog.toml"


STORE_ENV = "SPRINT_MODEL_STORE"


def store_root() -> Path:
    """Where downloaded models go: ``$SPRINT_MODEL_STORE``, else the user data folder."""
    import os

    env = os.environ.get(STORE_ENV)
    return Path(env).expanduser() if env else user_data_dir() / "models"


def hf_cache_folder(entry: CatalogEntry) -> Path | None:
    """A complete snapshot of ``entry`` already in the Hugging Face cache (reused, not copied)."""
    if entry.kind != "hub" or not entry.repo_id:
        return None
    try:
        from huggingface_hub import snapshot_download

        path = Path(
            snapshot_download(
                entry.repo_id, revision=entry.revision, local_files_only=True, allow_patterns=ALLOW_PATTERNS
            )
        )
    except Exception:  # noqa: BLE001 - not in the cache (or no huggingface_hub): simply not there
        return None
    try:
        inspect_model_folder(path)
    except ModelLoadError:
        return None
    return path


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    path = path or catalog_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SprintError(f"cannot read the model catalog {path}: {exc}") from None
    entries = []
    for raw in data.get("model", []):
        entry = CatalogEntry(**{**raw, "components": tuple(raw.get("components", REQUIRED_COMPONENTS))})
        if not NAME_RE.match(entry.name):
            raise SprintError(f"catalog: invalid model name {entry.name!r}")
        if entry.kind == "hub" and not (entry.repo_id and REPO_RE.match(entry.repo_id)):
            raise SprintError(f"catalog: invalid repo id {entry.repo_id!r} for {entry.name}")
        entries.append(entry)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise SprintError("catalog: duplicate model names")
    return entries


def find_entry(name: str, catalog: list[CatalogEntry] | None = None) -> CatalogEntry:
    for entry in catalog or load_catalog():
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in catalog or load_catalog())
    raise SprintError(f"unknown model {name!r}; known models: {known}")


def model_folder(entry: CatalogEntry, root: Path | None = None) -> Path:
    if entry.kind == "embedded" and entry.path:
        return project_root() / entry.path
    return (root or store_root()) / entry.name


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def state_of(entry: CatalogEntry, root: Path | None = None) -> ModelState:
    folder = model_folder(entry, root)
    size = folder_size(folder)
    if not folder.exists() or size == 0:
        cached = hf_cache_folder(entry)
        if cached is not None:
            return ModelState(entry, cached, "installed", folder_size(cached), "in the Hugging Face cache")
        return ModelState(entry, folder, "missing", 0)
    absent = [c for c in entry.components if not (folder / c).is_dir()]
    if not (folder / "model_index.json").is_file() or absent:
        what = ", ".join(absent) if absent else "model_index.json"
        return ModelState(entry, folder, "partial", size, f"missing: {what}")
    unfinished = record_problem(folder)  # a download that stopped is partial, whatever it left
    if unfinished is not None:
        return ModelState(entry, folder, "partial", size, unfinished)
    try:
        inspect_model_folder(folder)
    except ModelLoadError as exc:
        state = "partial" if "no weights" in str(exc) or "missing" in str(exc) else "corrupt"
        return ModelState(entry, folder, state, size, str(exc))
    return ModelState(entry, folder, "installed", size)


def verify_model(entry: CatalogEntry, root: Path | None = None) -> str:
    """`sprint models --verify`: the structural check of `state_of`, then every downloaded file's
    bytes against the checksums recorded at download time. A sentence saying what was checked;
    `SprintError` saying what is wrong."""
    state = state_of(entry, root)
    if state.state != "installed":
        raise SprintError(f"{entry.name} is {state.state}" + (f": {state.problem}" if state.problem else ""))
    present, hashed = verify_download(state.folder)
    size = f"{state.size_bytes / 2**20:.1f} MB"
    if present:
        return (
            f"{entry.name}: all {present} downloaded files present, {hashed} checked against the sha256 "
            f"recorded at download ({size}) in {state.folder}"
        )
    return (
        f"{entry.name}: all files present with valid headers ({size}) in {state.folder}; no checksums were "
        "recorded for this folder, so its bytes were not compared"
    )


def remove(entry: CatalogEntry, root: Path | None = None) -> Path:
    if entry.kind == "embedded":
        raise SprintError(f"{entry.name} is the embedded model and cannot be removed")
    folder = model_folder(entry, root)
    base = (root or store_root()).resolve()
    if base not in folder.resolve().parents:
        raise SprintError(f"refusing to delete {folder}: it is outside the model store {base}")
    if folder.exists():
        shutil.rmtree(folder)
    return folder

"""User settings: versioned JSON in the user config directory, written atomically.

A corrupt or unreadable file is moved aside (``settings.json.corrupt-<time>``) and replaced with
defaults; `load_settings` says so in its notice so the app can tell the user.

Two app instances share the file. `save_settings` given the settings this instance loaded (or last
saved) writes only the fields that differ from them over the file as it is on disk now, under a
lock: a field another instance changed meanwhile is kept unless this one changed it too (then the
later save wins for that field). Fields a newer app wrote and this one does not know are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .files import UnreadableFileError, parse_json, read_bounded_text
from .request import MAX_PROMPT_CHARS, MAX_SEED, MAX_SIDE

SETTINGS_VERSION = 1
MAX_SETTINGS_BYTES = 4 * 2**20
"""A settings file is a few KB; anything larger is not ours (and is not read into memory)."""
MAX_TEXT_SETTING = 4096
"""Paths, names and hex window state: longer values are replaced by their default."""
BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("off", "default", "reduce-overhead")
"""PyTorch engine's torch.compile: off (eager), Inductor, Inductor with CUDA graphs (CUDA only)."""
THEMES = ("light", "dark")


@dataclass
class Settings:
    model: str = ""  # empty: the embedded model
    backend: str = "auto"  # ONNX Runtime when the model has an export, else PyTorch
    device: str = "auto"
    compile: str = "off"  # the PyTorch engine's torch.compile mode (COMPILE_MODES); ONNX ignores it
    output_dir: str = ""  # empty: <user data>/gallery
    theme: str = "light"
    live_debounce_ms: int = 150
    refine: bool = True  # instant, then refine: the model's best step count when the input pauses
    steps: int = 0  # 0: the model's default_steps (its sprint_desktop.json)
    guidance: float = 4.5
    seed: int = 0
    seed_mode: str = "random"  # random | fixed
    width: int = 0  # 0: the model's default
    height: int = 0
    strength: float = 0.8
    control_scale: float = 1.0
    live: bool = True
    generate_on_start: bool = False  # regenerate the last prompt when the app starts (costs GPU time)
    window_geometry: str = ""  # hex of QWidget.saveGeometry()
    window_state: str = ""
    last_prompt: str = ""
    recent_prompts: list[str] = field(default_factory=list)
    gpu_offer_shown: bool = False  # the GPU runtime was offered once (never asked again)

    def validated(self) -> Settings:
        """A copy with out-of-range values replaced by defaults (a hand-edited file stays usable)."""
        d = Settings()
        out = Settings(**asdict(self))
        if out.backend not in BACKENDS:
            out.backend = d.backend
        if out.device not in DEVICES:
            out.device = d.device
        if out.compile not in COMPILE_MODES:
            out.compile = d.compile
        if out.theme not in THEMES:
            out.theme = d.theme
        if out.seed_mode not in ("random", "fixed"):
            out.seed_mode = d.seed_mode
        if not 0 <= out.steps <= 4:
            out.steps = d.steps
        if not 0 <= out.guidance <= 50:
            out.guidance = d.guidance
        if not 0 < out.strength <= 1:
            out.strength = d.strength
        if not 0 <= out.control_scale <= 2:
            out.control_scale = d.control_scale
        if not 0 <= out.live_debounce_ms <= 5000:
            out.live_debounce_ms = d.live_debounce_ms
        if not 0 <= out.seed <= MAX_SEED:
            out.seed = d.seed
        for name in ("width", "height"):
            if not 0 <= getattr(out, name) <= MAX_SIDE:
                setattr(out, name, 0)
        for name in ("model", "output_dir", "window_geometry", "window_state"):
            value = getattr(out, name)
            if len(value) > MAX_TEXT_SETTING or "\x00" in value:
                setattr(out, name, getattr(d, name))
        for name in ("window_geometry", "window_state"):
            if not _is_hex(getattr(out, name)):
                setattr(out, name, "")
        if len(out.last_prompt) > MAX_PROMPT_CHARS or "\x00" in out.last_prompt:
            out.last_prompt = d.last_prompt
        out.recent_prompts = [
            p
            for p in out.recent_prompts
            if isinstance(p, str) and len(p) <= MAX_PROMPT_CHARS and "\x00" not in p
        ][:50]
        return out


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)


def _coerce(data: dict[str, Any]) -> Settings:
    known = {f.name: f for f in fields(Settings)}
    defaults = asdict(Settings())
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in known:
            continue  # a newer app's setting: ignore, keep working
        expected = type(defaults[name])
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
            values[name] = value
    return Settings(**values).validated()


def _read_values(path: Path) -> dict[str, Any]:
    """The settings object of the file at ``path``, unchecked; raises `UnreadableFileError` or
    ValueError when it is not a settings file."""
    raw = parse_json(read_bounded_text(path, MAX_SETTINGS_BYTES, "settings file"), "the settings file")
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    version = raw.get("version", 0)
    if not isinstance(version, int):
        raise ValueError(f"unknown settings version {version!r}")
    values = raw.get("settings", {})
    if not isinstance(values, dict):
        raise ValueError("the settings are not a JSON object")
    return values


def load_settings(path: Path) -> tuple[Settings, str | None]:
    """Settings from ``path`` and a notice for the user if the file had to be replaced."""
    if not path.exists():
        return Settings(), None
    try:
        # A newer app's file: keep every setting this version knows (unknown ones are ignored).
        return _coerce(_read_values(path)), None
    except (UnreadableFileError, ValueError) as exc:
        if path.is_dir():  # a folder where the file should be: not ours to move
            return Settings(), f"Your settings file could not be read ({exc}); defaults are in use."
        backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, backup)
            where = f"; the old file was kept as {backup.name}"
        except OSError:
            where = ""
        return Settings(), f"Your settings file could not be read ({exc}); defaults are in use{where}."


def save_settings(settings: Settings, path: Path, base: Settings | None = None) -> None:
    """Write atomically: a temp file in the same folder, flushed, then renamed over the old one.

    With ``base`` (the settings as this instance loaded or last saved them), only the fields of
    ``settings`` that differ from it are written over the file's current content (see the module);
    without it, or when the file is absent or unreadable, every field is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        values = asdict(settings)
        if base is not None:
            try:
                on_disk = _read_values(path) if path.exists() else None
            except (UnreadableFileError, ValueError):
                on_disk = None  # not ours to keep: written whole
            if on_disk is not None:
                old = asdict(base)
                values = {**on_disk, **{k: v for k, v in values.items() if v != old[k] or k not in on_disk}}
        _write_atomic(path, json.dumps({"version": SETTINGS_VERSION, "settings": values}, indent=2))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the settings file's lock (``.settings.json.lock`` beside it) between reading the file
    and replacing it, so two instances saving at once do not drop each other's changes."""
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for 10 s, then OSError
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomic(path: Path, payload: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

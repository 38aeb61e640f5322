"""The parameters a person sets in the window, in one frozen dataclass, and the two mappings that
carry them: to and from the settings file, and from a PNG's metadata (`GenerateRequest.to_metadata`
writes it). Each field is named once here; the panels bind to it by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..core.metadata import restorable_params
from ..core.request import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_GUIDANCE, MAX_SEED, GenerateRequest
from ..core.settings import Settings
from ..core.trigflow import MAX_STEPS, MIN_STEPS

SEED_MODES = ("random", "fixed")
UI_MAX_SEED = 2**31 - 1
"""Random seeds are drawn below this (short enough to read and type); restored seeds may be larger."""


@dataclass(frozen=True)
class Params:
    """Everything in the window that changes the image, but the sketch (the canvas holds that)."""

    prompt: str = ""
    steps: int = DEFAULT_STEPS
    seed: int = 0
    seed_mode: str = "random"
    """"random": every Generate draws a new seed; "fixed": the seed stays."""
    guidance: float = DEFAULT_GUIDANCE
    width: int = 0
    """0: the model's default size (with ``height``)."""
    height: int = 0
    control_scale: float = 1.0
    strength: float = 0.8

    def request(
        self, sketch: np.ndarray | None = None, model: str = "", backend: str = "torch"
    ) -> GenerateRequest:
        """The engine request for these parameters (not validated: the engine does that)."""
        return GenerateRequest(
            prompt=self.prompt.strip(),
            steps=self.steps,
            seed=self.seed,
            width=self.width or None,
            height=self.height or None,
            guidance=round(self.guidance, 3),
            control_image=sketch,
            control_scale=round(self.control_scale, 3),
            strength=round(self.strength, 3),
            model=model,
            backend=backend,
        )


def size_presets(width: int, height: int, multiple: int) -> list[tuple[int, int]]:
    """The model's default size first, then about the same area in 3:4, 4:3, 9:16 and 16:9."""
    presets = [(width, height)]
    for aw, ah in ((3, 4), (4, 3), (9, 16), (16, 9)):
        scale = (width * height / (aw * ah)) ** 0.5
        size = (
            max(multiple, round(aw * scale / multiple) * multiple),
            max(multiple, round(ah * scale / multiple) * multiple),
        )
        if size not in presets:
            presets.append(size)
    return presets


PARAM_NAMES = tuple(f.name for f in fields(Params))

# Params field -> Settings field, where the names differ.
_SETTINGS_NAMES = {"prompt": "last_prompt"}


def params_from_settings(settings: Settings) -> Params:
    """The parameters the window starts with (the settings are already validated on load)."""
    values = {name: getattr(settings, _SETTINGS_NAMES.get(name, name)) for name in PARAM_NAMES}
    return params_with(Params(), values)[0]


def params_into_settings(params: Params, settings: Settings) -> Settings:
    """``settings`` with ``params`` written into it."""
    return replace(
        settings, **{_SETTINGS_NAMES.get(name, name): getattr(params, name) for name in PARAM_NAMES}
    )


RESTORED_NAMES = tuple(name for name in PARAM_NAMES if name != "seed_mode")
"""The fields an image's metadata can put back. The seed mode is never taken from an image:
restoring must not change how seeds are chosen."""


def params_from_metadata(meta: dict[str, Any], base: Params) -> tuple[Params, list[str]]:
    """``base`` with the fields a PNG's metadata holds, and the names of the fields it had whose
    values no control can take (wrong type, out of range, NaN, a NUL...), which are left as in
    ``base``. The metadata is untrusted: it goes through `restorable_params` first."""
    usable = restorable_params(meta)  # hardened: values no control could take are gone
    present = [name for name in RESTORED_NAMES if name in meta]
    values = {name: usable[name] for name in present if name in usable}
    for name in ("width", "height"):
        if name in values and values[name] is None:
            del values[name]  # None: the model's default size, as the image was made
    params, bad = params_with(base, values)
    return params, [name for name in present if name not in usable or name in bad]


def params_with(base: Params, values: dict[str, Any]) -> tuple[Params, list[str]]:
    """``base`` with each value that is valid for its field; the names of those that were not."""
    good: dict[str, Any] = {}
    bad: list[str] = []
    for name, value in values.items():
        check = _CHECKS[name]
        if check(value):
            good[name] = float(value) if name in _FLOATS else value
        else:
            bad.append(name)
    return replace(base, **good), bad


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_FLOATS = {"guidance", "control_scale", "strength"}
_CHECKS: dict[str, Any] = {
    "prompt": lambda v: isinstance(v, str),
    "steps": lambda v: _is_int(v) and MIN_STEPS <= v <= MAX_STEPS,
    "seed": lambda v: _is_int(v) and 0 <= v <= MAX_SEED,
    "seed_mode": lambda v: v in SEED_MODES,
    "guidance": lambda v: _is_number(v) and 0 <= v <= MAX_GUIDANCE,
    "width": lambda v: _is_int(v) and 0 <= v <= 4096,
    "height": lambda v: _is_int(v) and 0 <= v <= 4096,
    "control_scale": lambda v: _is_number(v) and 0 <= v <= 2,
    "strength": lambda v: _is_number(v) and 0 < v <= 1,
}

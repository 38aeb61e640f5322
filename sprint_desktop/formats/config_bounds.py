"""Sane bounds for every config value we read from a model folder, and the parameter count the
configs imply, checked before anything is built (pure Python, no torch).

A model folder is data from anywhere: a ``num_layers`` of 100000 or a width of 10^6 would make the
loaders allocate until the machine runs out, and a ``default_size`` of 65536 would ask for a 16 GiB
latent at the first image. Every value is checked against a range wide enough for the published
SANA-Sprint models (1.6B transformer, Gemma-2-2B, DC-AE f32c32) several times over; the total
parameter estimate is capped at `MAX_PARAMETERS`. A value outside its range is a `ModelLoadError`
naming the file and the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ModelLoadError
from ..core.request import MAX_SIDE
from .architectures import DCAE_F32C32, GEMMA2_2B, published_configs

MAX_PARAMETERS = 12_000_000_000
"""The published pipeline is about 4.6 billion parameters (Gemma-2-2B + the 1.6B transformer +
DC-AE); above 12 billion (48 GB in fp32) a folder is refused before it is built."""


@dataclass(frozen=True)
class Bound:
    """What one config value must be: the words of the error (``{name} must be {words}, got
    {value}``) and the test. A ``nullable`` field may be null, which means unset (transformers and
    diffusers write null for sizes they derive)."""

    words: str
    accepts: Callable[[Any], bool]
    nullable: bool = False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole(low: int, high: int, nullable: bool = True) -> Bound:
    return Bound(
        f"a whole number from {low} to {high:,}",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
        nullable,
    )


MLP_RATIO = Bound("a number above 0 and at most 16", lambda v: _is_number(v) and 0 < v <= 16)
SCALING_FACTOR = Bound("a finite number above 0", lambda v: _is_number(v) and math.isfinite(v) and v > 0)

# Per component, the fields we read; absent (or null where nullable) fields take diffusers' and
# transformers' defaults, which are the published 1.6B transformer and Gemma-2-2B.
TRANSFORMER_BOUNDS: dict[str, Bound] = {
    "in_channels": whole(1, 1024),
    "out_channels": whole(1, 1024),
    "num_attention_heads": whole(1, 512),
    "attention_head_dim": whole(1, 1024),
    "num_layers": whole(1, 256),
    "num_cross_attention_heads": whole(1, 512),
    "cross_attention_head_dim": whole(1, 1024),
    "cross_attention_dim": whole(1, 32768),
    "caption_channels": whole(1, 32768),
    "sample_size": whole(1, 1024),
    "patch_size": whole(1, 16),
    "mlp_ratio": MLP_RATIO,
}
TRANSFORMER_DEFAULTS = published_configs("sana-sprint-1.6b").transformer
TEXT_ENCODER_BOUNDS: dict[str, Bound] = {
    "vocab_size": whole(1, 1_048_576),
    "hidden_size": whole(1, 32768),
    "intermediate_size": whole(1, 131072),
    "num_hidden_layers": whole(1, 256),
    "num_attention_heads": whole(1, 512),
    "num_key_value_heads": whole(1, 512),
    "head_dim": whole(1, 1024),
    "max_position_embeddings": whole(1, 1_048_576),
    "sliding_window": whole(1, 1_048_576),
}
TEXT_ENCODER_DEFAULTS = GEMMA2_2B
VAE_BOUNDS: dict[str, Bound] = {
    "in_channels": whole(1, 64),
    "latent_channels": whole(1, 1024),
    "attention_head_dim": whole(1, 1024),
    "scaling_factor": SCALING_FACTOR,
}
VAE_DEFAULTS = {"scaling_factor": 1.0}
VAE_LISTS: dict[str, Bound] = {
    "encoder_block_out_channels": whole(1, 8192),
    "decoder_block_out_channels": whole(1, 8192),
    "encoder_layers_per_block": whole(0, 32),
    "decoder_layers_per_block": whole(0, 32),
}
MAX_VAE_BLOCKS = 12
MODEL_SETTINGS_BOUNDS: dict[str, Bound] = {
    "max_sequence_length": whole(1, 8192, nullable=False),
    "default_steps": whole(1, 4, nullable=False),
}


def check_model_configs(root: Path, read_json: Any) -> int:
    """Check every config value of the model in ``root`` and return its estimated parameter
    count; `ModelLoadError` naming the file and field when one is out of range or the total is
    above `MAX_PARAMETERS`. ``read_json(path) -> dict`` reads a config (it reports bad JSON)."""
    total = 0
    transformer = _config(root / "transformer" / "config.json", read_json)
    total += _transformer_params(root / "transformer" / "config.json", transformer)
    controlnet_path = root / "controlnet" / "config.json"
    if controlnet_path.is_file():
        total += _transformer_params(controlnet_path, read_json(controlnet_path))
    te_path = root / "text_encoder" / "config.json"
    total += _text_encoder_params(te_path, _config(te_path, read_json))
    vae_path = root / "vae" / "config.json"
    total += _vae_params(vae_path, _config(vae_path, read_json))
    settings_path = root / "sprint_desktop.json"
    if settings_path.is_file():
        check_model_settings(settings_path, read_json(settings_path))
    if total > MAX_PARAMETERS:
        raise ModelLoadError(
            f"the configs in {root} describe a model of about {total / 1e9:,.0f} billion parameters "
            f"(the limit is {MAX_PARAMETERS / 1e9:.0f} billion): refusing to build it"
        )
    return total


def check_model_settings(path: Path, settings: dict[str, Any]) -> None:
    """``sprint_desktop.json``: the per-model defaults the engine reads."""
    _values(path, settings, MODEL_SETTINGS_BOUNDS, {})
    if "default_size" in settings:
        size = settings["default_size"]
        if not (isinstance(size, list) and len(size) == 2):
            raise ModelLoadError(f"{path}: default_size must be [width, height], got {size!r}")
        for label, value in zip(("width", "height"), size, strict=True):
            _check(path, f"default_size {label}", value, whole(1, MAX_SIDE))
    if "complex_human_instruction" in settings and not isinstance(
        settings["complex_human_instruction"], bool
    ):
        raise ModelLoadError(f"{path}: complex_human_instruction must be true or false")
    name = settings.get("name", "")
    if not isinstance(name, str) or len(name) > 200 or "\x00" in name:
        raise ModelLoadError(f"{path}: name must be text of at most 200 characters")


def _config(path: Path, read_json: Any) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


def _check(path: Path, name: str, value: Any, bound: Bound) -> Any:
    if not bound.accepts(value):
        raise ModelLoadError(f"{path}: {name} must be {bound.words}, got {value!r:.40}")
    return value


def _values(
    path: Path, config: dict[str, Any], bounds: dict[str, Bound], defaults: dict[str, Any]
) -> dict[str, Any]:
    """``defaults`` overridden by the fields of ``config`` that ``bounds`` names, each checked."""
    values = dict(defaults)
    for name, bound in bounds.items():
        if name in config and not (config[name] is None and bound.nullable):
            values[name] = _check(path, name, config[name], bound)
    return values


def _transformer_params(path: Path, config: dict[str, Any]) -> int:
    v = _values(path, config, TRANSFORMER_BOUNDS, TRANSFORMER_DEFAULTS)
    inner = v["num_attention_heads"] * v["attention_head_dim"]
    cross = v["num_cross_attention_heads"] * v["cross_attention_head_dim"]
    hidden = int(v["mlp_ratio"] * inner)
    per_layer = (
        4 * inner * inner  # self-attention q, k, v, out
        + 2 * inner * cross
        + 2 * v["cross_attention_dim"] * cross  # cross-attention
        + 3 * inner * hidden
        + 9 * 2 * hidden  # GLUMBConv: inverted, depthwise, point
        + 6 * inner  # adaLN-single table
    )
    patch = v["patch_size"] ** 2
    io = (
        patch * inner * (v["in_channels"] + v["out_channels"])
        + v["caption_channels"] * inner
        + 8 * inner * inner
    )
    return v["num_layers"] * per_layer + io


def _text_encoder_params(path: Path, config: dict[str, Any]) -> int:
    v = _values(path, config, TEXT_ENCODER_BOUNDS, TEXT_ENCODER_DEFAULTS)
    h, d = v["hidden_size"], v["head_dim"]
    attention = h * d * (2 * v["num_attention_heads"] + 2 * v["num_key_value_heads"])
    return v["vocab_size"] * h + v["num_hidden_layers"] * (attention + 3 * h * v["intermediate_size"])


def _vae_params(path: Path, config: dict[str, Any]) -> int:
    _values(path, config, VAE_BOUNDS, VAE_DEFAULTS)
    total = 0
    for side in ("encoder", "decoder"):
        channels = _int_list(
            path, config, f"{side}_block_out_channels", list(DCAE_F32C32["encoder_block_out_channels"])
        )
        layers = _int_list(path, config, f"{side}_layers_per_block", [2] * len(channels))
        for c, n in zip(channels, layers, strict=False):
            total += (n + 1) * 2 * 9 * c * c  # two 3x3 convolutions per block, plus the transition
    return total


def _int_list(path: Path, config: dict[str, Any], name: str, default: list[int]) -> list[int]:
    values = config.get(name, default)
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_VAE_BLOCKS:
        raise ModelLoadError(f"{path}: {name} must be a list of 1 to {MAX_VAE_BLOCKS} numbers")
    return [_check(path, f"{name}[{i}]", x, VAE_LISTS[name]) for i, x in enumerate(values)]

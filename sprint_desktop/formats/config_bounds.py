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
from pathlib import Path
from typing import Any

from ..core.errors import ModelLoadError
from ..core.request import MAX_SIDE

MAX_PARAMETERS = 12_000_000_000
"""The published pipeline is about 4.6 billion parameters (Gemma-2-2B + the 1.6B transformer +
DC-AE); above 12 billion (48 GB in fp32) a folder is refused before it is built."""

IntRange = tuple[int, int]
# (field, low, high) per component; diffusers' and transformers' defaults fill absent fields.
TRANSFORMER_INTS: dict[str, IntRange] = {
    "in_channels": (1, 1024),
    "out_channels": (1, 1024),
    "num_attention_heads": (1, 512),
    "attention_head_dim": (1, 1024),
    "num_layers": (1, 256),
    "num_cross_attention_heads": (1, 512),
    "cross_attention_head_dim": (1, 1024),
    "cross_attention_dim": (1, 32768),
    "caption_channels": (1, 32768),
    "sample_size": (1, 1024),
    "patch_size": (1, 16),
}
TRANSFORMER_DEFAULTS = {
    "in_channels": 32,
    "out_channels": 32,
    "num_attention_heads": 70,
    "attention_head_dim": 32,
    "num_layers": 20,
    "num_cross_attention_heads": 20,
    "cross_attention_head_dim": 112,
    "cross_attention_dim": 2240,
    "caption_channels": 2304,
    "sample_size": 32,
    "patch_size": 1,
    "mlp_ratio": 2.5,
}
TEXT_ENCODER_INTS: dict[str, IntRange] = {
    "vocab_size": (1, 1_048_576),
    "hidden_size": (1, 32768),
    "intermediate_size": (1, 131072),
    "num_hidden_layers": (1, 256),
    "num_attention_heads": (1, 512),
    "num_key_value_heads": (1, 512),
    "head_dim": (1, 1024),
    "max_position_embeddings": (1, 1_048_576),
    "sliding_window": (1, 1_048_576),
}
TEXT_ENCODER_DEFAULTS = {
    "vocab_size": 256000,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
}
VAE_INTS: dict[str, IntRange] = {
    "in_channels": (1, 64),
    "latent_channels": (1, 1024),
    "attention_head_dim": (1, 1024),
}
VAE_LISTS: dict[str, IntRange] = {
    "encoder_block_out_channels": (1, 8192),
    "decoder_block_out_channels": (1, 8192),
    "encoder_layers_per_block": (0, 32),
    "decoder_layers_per_block": (0, 32),
}
MAX_VAE_BLOCKS = 12
MODEL_SETTINGS_INTS: dict[str, IntRange] = {"max_sequence_length": (1, 8192), "default_steps": (1, 4)}


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
    for name, (low, high) in MODEL_SETTINGS_INTS.items():
        if name in settings:
            _int(path, name, settings[name], low, high)
    if "default_size" in settings:
        size = settings["default_size"]
        if not (isinstance(size, list) and len(size) == 2):
            raise ModelLoadError(f"{path}: default_size must be [width, height], got {size!r}")
        for label, value in zip(("width", "height"), size, strict=True):
            _int(path, f"default_size {label}", value, 1, MAX_SIDE)
    if "complex_human_instruction" in settings and not isinstance(
        settings["complex_human_instruction"], bool
    ):
        raise ModelLoadError(f"{path}: complex_human_instruction must be true or false")
    name = settings.get("name", "")
    if not isinstance(name, str) or len(name) > 200 or "\x00" in name:
        raise ModelLoadError(f"{path}: name must be text of at most 200 characters")


def _config(path: Path, read_json: Any) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


def _int(path: Path, name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelLoadError(
            f"{path}: {name} must be a whole number from {low} to {high:,}, got {value!r:.40}"
        )
    return value


def _ints(
    path: Path, config: dict[str, Any], bounds: dict[str, IntRange], defaults: dict[str, int]
) -> dict[str, int]:
    values = dict(defaults)
    for name, (low, high) in bounds.items():
        if name in config and config[name] is not None:
            values[name] = _int(path, name, config[name], low, high)
    return values


def _transformer_params(path: Path, config: dict[str, Any]) -> int:
    v = _ints(
        path,
        config,
        TRANSFORMER_INTS,
        {k: int(x) for k, x in TRANSFORMER_DEFAULTS.items() if k != "mlp_ratio"},
    )
    mlp_ratio = config.get("mlp_ratio", TRANSFORMER_DEFAULTS["mlp_ratio"])
    if not isinstance(mlp_ratio, (int, float)) or isinstance(mlp_ratio, bool) or not 0 < mlp_ratio <= 16:
        raise ModelLoadError(
            f"{path}: mlp_ratio must be a number above 0 and at most 16, got {mlp_ratio!r:.40}"
        )
    inner = v["num_attention_heads"] * v["attention_head_dim"]
    cross = v["num_cross_attention_heads"] * v["cross_attention_head_dim"]
    hidden = int(mlp_ratio * inner)
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
    v = _ints(path, config, TEXT_ENCODER_INTS, TEXT_ENCODER_DEFAULTS)
    h, d = v["hidden_size"], v["head_dim"]
    attention = h * d * (2 * v["num_attention_heads"] + 2 * v["num_key_value_heads"])
    return v["vocab_size"] * h + v["num_hidden_layers"] * (attention + 3 * h * v["intermediate_size"])


def _vae_params(path: Path, config: dict[str, Any]) -> int:
    _ints(path, config, VAE_INTS, {})
    total = 0
    for side in ("encoder", "decoder"):
        channels = _int_list(path, config, f"{side}_block_out_channels", [128, 256, 512, 512, 1024, 1024])
        layers = _int_list(path, config, f"{side}_layers_per_block", [2] * len(channels))
        for c, n in zip(channels, layers, strict=False):
            total += (n + 1) * 2 * 9 * c * c  # two 3x3 convolutions per block, plus the transition
    scaling = config.get("scaling_factor", 1.0)
    if (
        not isinstance(scaling, (int, float))
        or isinstance(scaling, bool)
        or not (math.isfinite(scaling) and scaling > 0)
    ):
        raise ModelLoadError(f"{path}: scaling_factor must be a finite number above 0, got {scaling!r:.40}")
    return total


def _int_list(path: Path, config: dict[str, Any], name: str, default: list[int]) -> list[int]:
    values = config.get(name, default)
    low, high = VAE_LISTS[name]
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_VAE_BLOCKS:
        raise ModelLoadError(f"{path}: {name} must be a list of 1 to {MAX_VAE_BLOCKS} numbers")
    return [_int(path, f"{name}[{i}]", x, low, high) for i, x in enumerate(values)]

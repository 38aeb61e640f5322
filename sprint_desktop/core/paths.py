"""Where things live: the embedded model, the user's data, cache and config directories."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "SprintDesktop"
APP_AUTHOR = "SprintDesktop"
EMBEDDED_MODEL_NAME = "sprint-shapes"
MODEL_ENV = "SPRINT_MODEL"


def project_root() -> Path:
    """The source tree's root (holds ``models/`` and ``resources/`` in a checkout or a bundle)."""
    return Path(__file__).resolve().parents[2]


def user_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


def user_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR))


def user_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR))


def embedded_model_candidates() -> list[Path]:
    """Places the embedded Sprint-Shapes model may be, most specific first."""
    return [
        project_root() / "models" / EMBEDDED_MODEL_NAME,
        user_data_dir() / "models" / EMBEDDED_MODEL_NAME,
    ]


def default_model_path() -> Path | None:
    """``$SPRINT_MODEL`` if set, else the embedded model if installed, else ``None``."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env).expanduser()
    for candidate in embedded_model_candidates():
        if (candidate / "model_index.json").is_file():
            return candidate
    return None

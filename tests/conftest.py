"""Shared fixtures: a tiny real SANA-Sprint pipeline saved in diffusers layout, loaded like a real model."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# An empty user cache for the whole run: the backend "auto" starts on ONNX Runtime when it finds an
# export there, so an export left by `sprint export-onnx` on this machine must not change the tests.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="sprint-test-cache-")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SANA-Sprint pipeline (real diffusers/transformers classes, seed 0) on disk."""
    from sprint_desktop.devtools.builders import save_pipeline, tiny_pipeline

    path = tmp_path_factory.mktemp("models") / "tiny-sprint"
    save_pipeline(tiny_pipeline(seed=0), path)
    return path


@pytest.fixture
def hub_online(monkeypatch):
    """The suite runs with HF_HUB_OFFLINE=1; a test that talks to the loopback hub turns it off."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    from sprint_desktop.engine.torch_backend import TorchEngine

    engine = TorchEngine(tiny_model_dir, device="cpu")
    engine.load()
    return engine


@pytest.fixture(scope="session")
def shipped_model_dir(tiny_model_dir, tmp_path_factory):
    """A copy of the tiny model that ships its ONNX export inside it (``<model>/onnx/``), as the
    packaged app's embedded model does (packaging/stage_model.py)."""
    import shutil

    from sprint_desktop.export.onnx_export import export_model

    root = tmp_path_factory.mktemp("shipped")
    model = root / "tiny-sprint"
    shutil.copytree(tiny_model_dir, model)  # copy2: weights keep their mtimes, which the fingerprint reads
    shutil.copytree(export_model(model, cache_root=root / "cache"), model / "onnx")
    shutil.rmtree(root / "cache")
    return model

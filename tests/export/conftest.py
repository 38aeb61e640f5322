"""Exports shared by the ONNX tests: the tiny model, and a copy of it that ships a ControlNet."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def export(tiny_model_dir, cache):
    from sprint_desktop.export.onnx_export import export_model

    return export_model(tiny_model_dir, cache_root=cache)


@dataclass(frozen=True)
class ControlNetModel:
    path: Path
    export_before: Path
    """The export made before the ControlNet was added to the folder."""
    export: Path


@pytest.fixture(scope="session")
def controlnet_model(tiny_model_dir, cache, tmp_path_factory) -> ControlNetModel:
    """A copy of the tiny model (same folder name, same files) exported, then given a 2-block
    ControlNet with seeded random (not zero) output projections, then exported again."""
    import torch

    from sprint_desktop.engine.controlnet import SprintControlNetModel
    from sprint_desktop.engine.torch_backend import TorchEngine
    from sprint_desktop.export.onnx_export import export_model

    path = tmp_path_factory.mktemp("cn") / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, path)
    before = export_model(path, cache_root=cache)
    engine = TorchEngine(path, device="cpu")
    engine.load()
    torch.manual_seed(0)
    controlnet = SprintControlNetModel.from_transformer(engine.transformer, 2)
    for block in controlnet.controlnet_blocks:
        torch.nn.init.normal_(block.weight, std=0.5)
    torch.nn.init.normal_(controlnet.input_block.weight, std=0.5)
    controlnet.save_pretrained(path / "controlnet")
    return ControlNetModel(path, before, export_model(path, cache_root=cache))


@pytest.fixture(scope="session")
def controlnet_engine(controlnet_model):
    from sprint_desktop.engine.torch_backend import TorchEngine

    engine = TorchEngine(controlnet_model.path, device="cpu")
    engine.load()
    return engine

"""`sprint distill controlnet` runs two steps on tiny sizes, on the world and on a dataset folder."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from sprint_desktop.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from sprint_desktop.distill.train_controlnet import train
from sprint_desktop.engine.controlnet import SprintControlNetModel
from sprint_desktop.engine.torch_backend import TorchEngine

from .configs import tiny_controlnet


def test_two_steps_on_a_dataset_folder_then_the_engine_uses_it(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(data / f"{i}.png")
        (data / f"{i}.txt").write_text("a red circle")
    out = train(tiny_controlnet(tiny_model_dir, tmp_path / "run", data=str(data)))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    cn = SprintControlNetModel.from_pretrained(out)
    assert cn.config.num_layers == 1  # half of the tiny model's 2 blocks
    # Trained residual projections are no longer all zero.
    assert any(float(p.abs().max()) > 0 for p in cn.controlnet_blocks.parameters())
    # Shipped beside a model, the engine picks it up.
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    shutil.copytree(out, model / "controlnet")
    assert TorchEngine(model, device="cpu").info.control_mode == "controlnet"
    # `sprint evaluate --control N` measures it as the training run does; a model without one: one line
    report = tmp_path / "eval.json"
    base = ["evaluate", "--steps", "1", "--images", "4", "--json", str(report)]
    args = [*base, "--control", "2"]
    assert main([*args, "--model", str(model)]) == EXIT_OK
    card = json.loads(report.read_text())[0]
    assert card["captions_seed"] == 999  # the model card's captions
    control = json.loads((tmp_path / "eval-control.json").read_text())
    assert control["sketches"] == 2 and 0 <= control["sketch_iou"] <= 1 and 0 <= control["judge_1step"] <= 1
    capsys.readouterr()
    assert main([*args, "--model", str(tiny_model_dir)]) == EXIT_ERROR
    assert "ships no ControlNet" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main([*args, "--teacher", str(tmp_path)])
    assert usage.value.code == EXIT_USAGE and "--control N needs --model" in capsys.readouterr().err
    # --seed: other captions, to check a pick made on the card's
    assert main([*base, "--seed", "5", "--model", str(model)]) == EXIT_OK
    other = json.loads(report.read_text())[0]
    assert other["captions_seed"] == 5 and other["fd"] != card["fd"]  # other scenes, other references


def test_two_steps_on_the_world_with_evaluation(tiny_model_dir, tmp_path):
    train(tiny_controlnet(tiny_model_dir, tmp_path / "run", data="world"))
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert 0 <= last["sketch_iou"] <= 1 and 0 <= last["judge_1step"] <= 1


def test_a_resumed_run_cools_down_on_a_cosine(tiny_model_dir, tmp_path):
    """Held at the rate to its checkpoint, then a cosine to 0 (the teacher's cool-down branch)."""
    cfg = tiny_controlnet(tiny_model_dir, tmp_path / "run", eval_every=10)
    train(cfg)
    train(dataclasses.replace(cfg, iters=4, lr_schedule="cosine", decay_start=2))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["lr"] for r in log] == pytest.approx([1e-4, 1e-4, 5e-5, 0.0])

"""`sprint bench` on the tiny random-weight architecture (a source install has the devtools)."""

from __future__ import annotations

import json

import pytest

from sprint_desktop.cli import main


def test_bench_without_warmup_times_the_first_runs(tmp_path, capsys):
    """``--warmup 0`` is a real question (how slow is the first image?): the cached case is a cache
    hit from its first timed run, because the bench primes that prompt before it times anything."""
    out = tmp_path / "bench.json"
    args = ["bench", "--arch", "tiny", "--steps", "1,2", "--repeats", "1", "--warmup", "0", "--no-stock"]
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["warmup"] == 0 and report["repeats"] == 1
    assert set(report["results"]) == {"1", "2"}
    for row in report["results"].values():
        assert row["ours_new"]["encode_ms"] > 0 and row["ours_cached"]["total_ms"] > 0
    assert "after 0 warm-up" in capsys.readouterr().out


def test_a_controlnet_of_fewer_blocks_costs_only(tmp_path, capsys):
    """``--control-layers``: the model with a ControlNet of that many blocks copied from its
    transformer; its outputs start at zero, so a sketch leaves the image as the plain model's."""
    import numpy as np

    from sprint_desktop.core.paths import project_root
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.devtools.controlnet_variant import with_controlnet_blocks
    from sprint_desktop.engine.torch_backend import TorchEngine

    model = with_controlnet_blocks(project_root() / "models" / "sprint-shapes", 1, tmp_path / "m")
    assert json.loads((model / "controlnet" / "config.json").read_text())["num_layers"] == 1
    engine = TorchEngine(model, device="cpu")
    engine.load()
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[16:48, 30:34] = 0
    plain = engine.generate(GenerateRequest("a red circle", steps=1, seed=3)).image
    drawn = engine.generate(GenerateRequest("a red circle", steps=1, seed=3, control_image=sketch)).image
    assert np.abs(plain.astype(int) - drawn.astype(int)).max() <= 1
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--control-layers", "2", "--steps", "1"])
    assert exit_.value.code == 2
    assert "--control-layers goes with --control" in capsys.readouterr().err


def test_bench_times_the_same_engine_compiled(capsys):
    """``--compile``: the eager rows, then the same engine compiled as the product compiles it (here
    with Dynamo's "eager" backend: the real tracing, no Inductor minute), with a ControlNet too."""
    from sprint_desktop.devtools.bench import run_bench

    report = run_bench(
        model=None,
        arch="tiny",
        device="cpu",
        dtype="fp32",
        size=None,
        steps=[1, 2],
        repeats=1,
        warmup=0,
        stock=False,
        control=True,
        compile="default",
        compile_backend="eager",
    )
    compiled = report["compiled"]
    assert compiled["compile_s"] > 0 and "torch.compile default" in compiled["model"]
    ratios = compiled["ratio_compiled_vs_eager"]
    assert set(ratios) == {"1", "2"}
    assert set(ratios["1"]) == {"ours_new", "ours_cached", "ours_control"} and min(ratios["1"].values()) > 0
    assert "first image (compiling)" in report["table"] and "| 2 | ours_control |" in report["table"]
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--backend", "onnx", "--compile", "default"])
    assert exit_.value.code == 2 and "--compile times the PyTorch engine" in capsys.readouterr().err

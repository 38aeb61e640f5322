"""The `sprint` command end to end on the tiny model folder (real files, real subprocess for one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sprint_desktop.cli import main
from sprint_desktop.core.metadata import read_png_params


def test_generate_writes_png_with_metadata(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    code = main(
        [
            "generate",
            "a red circle left of a blue square",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "1",
            "--seed",
            "7",
            "--size",
            "32x32",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    params = read_png_params(out)
    assert params["prompt"] == "a red circle left of a blue square"
    assert (params["steps"], params["seed"], params["width"], params["height"]) == (1, 7, 32, 32)
    assert params["guidance"] == 4.5 and params["backend"] == "torch" and params["model"] == "tiny-sprint"
    assert Image.open(out).size == (32, 32)
    # Same parameters -> same pixels.
    out2 = tmp_path / "y.png"
    main(
        [
            "generate",
            "a red circle left of a blue square",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "1",
            "--seed",
            "7",
            "-o",
            str(out2),
        ]
    )
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(out2)))


def test_info_prints_parameters(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    main(["generate", "two green crosses", "--model", str(tiny_model_dir), "--seed", "3", "-o", str(out)])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["prompt"] == "two green crosses" and printed["seed"] == 3


def test_prompts_file(tiny_model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n\n  a blue square  \nthree yellow triangles\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    code = main(
        [
            "generate",
            "--prompts-file",
            str(prompts),
            "--out-dir",
            str(out_dir),
            "--model",
            str(tiny_model_dir),
            "--seed",
            "1",
            "--steps",
            "2",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["0000.png", "0002.png", "0003.png", "timings.jsonl"]
    records = [json.loads(line) for line in (out_dir / "timings.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == ["0000.png", "0002.png", "0003.png"]
    assert [r["prompt"] for r in records] == ["a red circle", "a blue square", "three yellow triangles"]
    assert all(r["total_ms"] > 0 and r["encode_ms"] >= 0 for r in records)
    assert read_png_params(out_dir / "0002.png")["prompt"] == "a blue square"


def test_prompts_file_with_a_bad_line_keeps_the_rest(tiny_model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n" + "x" * 20_000 + "\na blue square\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    code = main(
        [
            "generate",
            "--prompts-file",
            str(prompts),
            "--out-dir",
            str(out_dir),
            "--model",
            str(tiny_model_dir),
            "--seed",
            "1",
        ]
    )
    assert code == 1
    assert "line 2: invalid request: prompt is too long" in capsys.readouterr().err
    assert (out_dir / "0000.png").exists() and (out_dir / "0002.png").exists()
    assert not (out_dir / "0001.png").exists()


def test_batch_writes_numbered_files(tiny_model_dir, tmp_path):
    out = tmp_path / "b.png"
    assert (
        main(
            [
                "generate",
                "a red circle",
                "--model",
                str(tiny_model_dir),
                "--batch",
                "2",
                "--seed",
                "5",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert [read_png_params(tmp_path / f"b-{i}.png")["seed"] for i in range(2)] == [5, 6]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "5"], "steps must be 1-4, got 5"),
        (["--steps", "0"], "steps must be 1-4, got 0"),
        (["--size", "33x32"], "width must be a multiple of 2"),
        (["--guidance", "nan"], "guidance must be a finite number"),
    ],
)
def test_bad_arguments_give_clear_errors(tiny_model_dir, tmp_path, capsys, args, message):
    out = tmp_path / "x.png"
    code = main(["generate", "a red circle", "--model", str(tiny_model_dir), "-o", str(out), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_empty_prompt_is_refused_before_loading(tmp_path, capsys):
    code = main(
        ["generate", "  ", "--model", str(tmp_path / "does-not-exist"), "-o", str(tmp_path / "x.png")]
    )
    assert code == 2
    assert "prompt is empty" in capsys.readouterr().err


def test_missing_model_folder(tmp_path, capsys):
    code = main(
        ["generate", "a red circle", "--model", str(tmp_path / "nope"), "-o", str(tmp_path / "x.png")]
    )
    assert code == 1
    assert "model folder not found" in capsys.readouterr().err


def test_no_model_installed_message(tmp_path, monkeypatch, capsys):
    import sprint_desktop.cli.common as common

    monkeypatch.delenv("SPRINT_MODEL", raising=False)
    monkeypatch.setattr(common, "default_model_path", lambda: None)
    code = main(["generate", "a red circle", "-o", str(tmp_path / "x.png")])
    assert code == 1
    assert "no model is installed" in capsys.readouterr().err


def test_info_on_a_foreign_png(tmp_path, capsys):
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    assert main(["info", str(path)]) == 1
    assert "not made by this app" in capsys.readouterr().err


def test_console_script_runs_in_a_subprocess(tiny_model_dir, tmp_path):
    out = tmp_path / "s.png"
    env = {**os.environ, "SPRINT_MODEL": str(tiny_model_dir)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sprint_desktop.cli",
            "generate",
            "a purple square",
            "--seed",
            "2",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert read_png_params(out)["seed"] == 2


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_requested_without_cuda(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "generate",
            "a red circle",
            "--model",
            str(tiny_model_dir),
            "--device",
            "cuda",
            "-o",
            str(tmp_path / "x.png"),
        ]
    )
    assert code == 1
    assert "no CUDA device is available" in capsys.readouterr().err


def test_unwritable_output(tiny_model_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["generate", "a red circle", "--model", str(tiny_model_dir), "-o", str(blocker / "x.png")])
    assert code == 1
    assert "cannot write" in capsys.readouterr().err


def test_generate_with_a_sketch(tiny_model_dir, tmp_path):
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[10:50, 10] = sketch[10:50, 49] = sketch[10, 10:50] = sketch[49, 10:50] = 0
    Image.fromarray(sketch).save(tmp_path / "s.png")
    out = tmp_path / "c.png"
    assert (
        main(
            [
                "generate",
                "a red square",
                "--model",
                str(tiny_model_dir),
                "--control",
                str(tmp_path / "s.png"),
                "--seed",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    params = read_png_params(out)
    assert "control_digest" in params and params["strength"] == 0.8


def test_prompts_file_with_a_control_dir(tiny_model_dir, tmp_path):
    (tmp_path / "p.txt").write_text("a red circle\na blue square\n")
    (tmp_path / "sk").mkdir()
    sketch = np.full((32, 32, 3), 255, np.uint8)
    sketch[8:24, 8] = 0
    Image.fromarray(sketch).save(tmp_path / "sk" / "0001.png")
    assert (
        main(
            [
                "generate",
                "--prompts-file",
                str(tmp_path / "p.txt"),
                "--out-dir",
                str(tmp_path / "o"),
                "--control-dir",
                str(tmp_path / "sk"),
                "--model",
                str(tiny_model_dir),
                "--seed",
                "2",
            ]
        )
        == 0
    )
    assert "control_digest" not in read_png_params(tmp_path / "o" / "0000.png")
    assert "control_digest" in read_png_params(tmp_path / "o" / "0001.png")


@pytest.mark.parametrize("kind", ["missing", "not-an-image", "huge"])
def test_bad_control_images(tiny_model_dir, tmp_path, capsys, kind):
    path = tmp_path / "c.png"
    if kind == "not-an-image":
        path.write_text("hello")
    elif kind == "huge":
        Image.new("RGB", (9000, 10)).save(path)
    code = main(
        [
            "generate",
            "a red square",
            "--model",
            str(tiny_model_dir),
            "--control",
            str(path),
            "-o",
            str(tmp_path / "x.png"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert {"missing": "not found", "not-an-image": "not a readable image", "huge": "the limit is 8192"}[
        kind
    ] in err


def test_distill_options_reach_the_training_config(tmp_path):
    out = tmp_path / "vae"
    assert (
        main(
            [
                "distill",
                "vae",
                "--out",
                str(out),
                "--iters",
                "1",
                "--batch",
                "2",
                "--eval-every",
                "1",
                "--lr",
                "0.002",
            ]
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert (config["iters"], config["batch"], config["lr"], config["eval_every"]) == (1, 2, 0.002, 1)
    assert (out / "vae" / "config.json").exists()


@pytest.mark.parametrize("part", ["vae", "teacher", "student", "controlnet", "pairs"])
def test_distill_options_are_the_config_fields_with_their_defaults(part):
    import argparse
    import dataclasses

    from sprint_desktop.cli.distill import add_config_options, config_class

    config_cls = config_class(part)
    parser = argparse.ArgumentParser()
    add_config_options(parser, config_cls)
    parsed = vars(parser.parse_args([]))
    fields = [f for f in dataclasses.fields(config_cls) if f.init]
    assert sorted(parsed) == sorted(f.name for f in fields)  # every field is an option, nothing else
    assert config_cls(**parsed) == config_cls()  # and each option's default is the dataclass default
    for f in fields:
        assert parsed[f.name] == getattr(config_cls(), f.name), f.name


def test_distill_help_shows_the_dataclass_defaults(capsys):
    from sprint_desktop.distill.train_teacher import TeacherConfig

    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "teacher", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    defaults = TeacherConfig()
    assert f"--iters ITERS (default: {defaults.iters})" in text
    assert f"--lr LR (default: {defaults.lr})" in text
    assert "--mixed-precision {no,bf16,fp16}" in text and "--ema-reset, --no-ema-reset" in text


def test_distill_options_parse_to_the_field_types():
    import argparse

    from sprint_desktop.cli.distill import add_config_options, config_class

    parser = argparse.ArgumentParser()
    add_config_options(parser, config_class("student"))
    args = parser.parse_args(["--disc-layers", "1,3", "--mode", "scm", "--lr", "1e-3"])
    assert (args.disc_layers, args.mode, args.lr) == ((1, 3), "scm", 1e-3)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "fast"])
    parser = argparse.ArgumentParser()
    add_config_options(parser, config_class("teacher"))
    assert parser.parse_args(["--ema-reset"]).ema_reset is True


def test_bench_without_the_developer_tools_says_so(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sprint_desktop.devtools", None)  # as in the installed app
    assert main(["bench", "--arch", "tiny"]) == 1
    err = capsys.readouterr().err
    assert "sprint bench needs a source install" in err and "Traceback" not in err


def test_usage_errors_found_by_a_command_exit_2_with_the_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "a red circle"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sprint") and "give -o OUT.png for a single prompt" in err


def test_bench_runs_from_a_source_install(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--arch", "tiny", "--steps", "1", "--repeats", "1", "--warmup", "1", "--no-stock"]
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["table"] in capsys.readouterr().out

"""The bad-input corpus, part 4: `sprint` arguments and prompt files (and issue #13 item 9). Each
case: the exit code, one `sprint: ...` line on stderr, no traceback, and no file of the user's
changed. Most are refused before a model is loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sprint_desktop.cli import main
from sprint_desktop.core.metadata import read_png_params

from .bad_inputs import one_line


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def last_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("sprint")]
    assert lines, err
    return lines[-1]


BAD_ARGS = {
    "steps 0": (["--steps", "0"], 2),
    "steps 9": (["--steps", "9"], 2),
    "size letters": (["--size", "big"], 2),
    "size zero": (["--size", "0x0"], 2),
    "size too large": (["--size", "100000x64"], 2),
    "seed negative": (["--seed", "-1"], 2),
    "seed 2^64": (["--seed", str(2**64)], 2),
    "guidance nan": (["--guidance", "nan"], 2),
    "guidance inf": (["--guidance", "inf"], 2),
    "guidance negative": (["--guidance", "-3"], 2),
    "batch 0": (["--batch", "0"], 2),
    "batch 1000": (["--batch", "1000"], 2),
    "timesteps words": (["--timesteps", "a,b"], 2),
    "timesteps nan": (["--timesteps", "nan,0"], 2),
    "timesteps wrong count": (["--steps", "2", "--timesteps", "1.5,0"], 2),
    "strength 0": (["--strength", "0"], 2),
    "control scale 5": (["--control-scale", "5"], 2),
    "control missing": (["--control", "{tmp}/nope.png"], 2),
    "control a folder": (["--control", "{tmp}"], 2),
    "control-dir without file": (["--control-dir", "{tmp}"], 2),
    "output jpg": (["-o", "{tmp}/x.jpg"], 2),
    "model missing": (["--model", "{tmp}/no-model"], 1),
    "model a file": (["--model", "{tmp}/file.txt"], 1),
    "backend unknown": (["--backend", "tpu"], 2),
    "device unknown": (["--device", "tpu"], 2),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_generate_arguments(case, tmp_path, capsys, tiny_model_dir):
    extra, expected = BAD_ARGS[case]
    (tmp_path / "file.txt").write_text("mine")
    extra = [a.format(tmp=tmp_path) for a in extra]
    argv = [
        "generate",
        "a red circle",
        "-o",
        str(tmp_path / "out.png"),
        "--model",
        str(tiny_model_dir),
        *extra,
    ]
    if "-o" in extra:
        argv = ["generate", "a red circle", "--model", str(tiny_model_dir), *extra]
    try:
        code, _, err = run(argv, capsys)
    except SystemExit as exc:  # argparse's own refusals
        code, err = exc.code, capsys.readouterr().err
    assert code == expected, err
    one_line(last_line(err))
    assert not (tmp_path / "out.png").exists()
    assert (tmp_path / "file.txt").read_text() == "mine"


PROMPT_FILES = {
    "missing": None,
    "a folder": "dir",
    "empty": b"",
    "blank lines": b"\n  \n\t\n",
    "utf-16": "a red circle\n".encode("utf-16"),
    "latin-1": b"caf\xe9 with a red circle\n",
    "dev zero": "/dev/zero",
    "fifo": "fifo",
    "17 MB": "huge",
}


@pytest.mark.parametrize("case", sorted(PROMPT_FILES))
def test_prompts_file(case, tmp_path, capsys, tiny_model_dir):
    data = PROMPT_FILES[case]
    path = tmp_path / "prompts.txt"
    if data == "dir":
        path.mkdir()
    elif data == "/dev/zero":
        path = "/dev/zero"
    elif data == "fifo":
        os.mkfifo(path)
    elif data == "huge":
        with path.open("wb") as fh:
            fh.truncate(17 * 2**20)
    elif data is not None:
        path.write_bytes(data)
    out = tmp_path / "out"
    code, _, err = run(
        ["generate", "--prompts-file", str(path), "--out-dir", str(out), "--model", str(tiny_model_dir)],
        capsys,
    )
    assert code == 1
    one_line(last_line(err))
    assert last_line(err).startswith("sprint: error: ")
    assert not out.exists() or not any(out.iterdir())


def test_a_prompts_file_with_a_bom_gives_clean_prompts(tmp_path, capsys, tiny_model_dir):
    path = tmp_path / "prompts.txt"
    path.write_bytes("\ufeffa red circle\r\ntwo blue squares\n".encode())
    code, _, err = run(
        [
            "generate",
            "--prompts-file",
            str(path),
            "--out-dir",
            str(tmp_path / "out"),
            "--model",
            str(tiny_model_dir),
            "--backend",
            "torch",
            "--steps",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert read_png_params(tmp_path / "out" / "0000.png")["prompt"] == "a red circle"
    assert read_png_params(tmp_path / "out" / "0001.png")["prompt"] == "two blue squares"


def test_out_dir_that_is_a_file_is_refused_before_loading(tmp_path, capsys, tiny_model_dir):
    (tmp_path / "prompts.txt").write_text("a red circle\n")
    target = tmp_path / "results"
    target.write_text("my notes")
    code, _, err = run(
        [
            "generate",
            "--prompts-file",
            str(tmp_path / "prompts.txt"),
            "--out-dir",
            str(target),
            "--model",
            str(tiny_model_dir),
        ],
        capsys,
    )
    assert code == 1 and "is a file, not a folder" in err and "model " not in err  # before the load
    assert target.read_text() == "my notes"


def test_output_under_a_file_is_refused_before_loading(tmp_path, capsys, tiny_model_dir):
    (tmp_path / "f").write_text("x")
    code, _, err = run(
        ["generate", "a red circle", "-o", str(tmp_path / "f" / "a.png"), "--model", str(tiny_model_dir)],
        capsys,
    )
    assert code == 1 and "is a file, not a folder" in err
    one_line(last_line(err))


def test_read_only_out_dir_is_refused(tmp_path, capsys, tiny_model_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)]).returncode
    ):
        pytest.skip("cannot make a read-only mount here")
    try:
        (tmp_path / "p.txt").write_text("a red circle\n")
        code, _, err = run(
            [
                "generate",
                "--prompts-file",
                str(tmp_path / "p.txt"),
                "--out-dir",
                str(ro),
                "--model",
                str(tiny_model_dir),
            ],
            capsys,
        )
    finally:
        subprocess.run(["umount", "-l", str(ro)])
    assert code == 1 and "cannot write to --out-dir" in err
    one_line(last_line(err))


def test_a_missing_control_dir_is_an_error_not_ignored(tmp_path, capsys, tiny_model_dir):
    (tmp_path / "p.txt").write_text("a red circle\n")
    code, _, err = run(
        [
            "generate",
            "--prompts-file",
            str(tmp_path / "p.txt"),
            "--out-dir",
            str(tmp_path / "o"),
            "--control-dir",
            str(tmp_path / "sketchez"),
            "--model",
            str(tiny_model_dir),
        ],
        capsys,
    )
    assert code == 1 and "is not a folder of sketches" in err


def test_a_size_far_above_the_model_is_warned_before_the_wait(tmp_path, capsys, tiny_model_dir):
    code, out, err = run(
        [
            "generate",
            "a red circle",
            "-o",
            str(tmp_path / "a.png"),
            "--size",
            "256",
            "--steps",
            "1",
            "--backend",
            "torch",
            "--model",
            str(tiny_model_dir),
        ],
        capsys,
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "times the pixels" in line]
    assert len(warnings) == 1 and "256x256 is 64 times the pixels of this model's 32x32" in warnings[0]


OTHER_COMMANDS = {
    "models verify unknown": (["models", "--verify", "no-such-model"], 1),
    "models remove embedded": (["models", "--remove", "sprint-shapes"], 1),
    "download unknown": (["download", "no-such-model"], 1),
    "download embedded": (["download", "sprint-shapes"], 1),
    "export missing model": (["export-onnx", "--model", "/nonexistent/model"], 1),
    "info missing": (["info", "/nonexistent.png"], 1),
    "unknown command": (["paint"], 2),
    "no command": ([], 2),
}


@pytest.mark.parametrize("case", sorted(OTHER_COMMANDS))
def test_other_commands(case, capsys):
    argv, expected = OTHER_COMMANDS[case]
    try:
        code, _, err = run(argv, capsys)
    except SystemExit as exc:
        code, err = exc.code, capsys.readouterr().err
    assert code == expected
    one_line(last_line(err) if code == 1 else err.strip().splitlines()[-1])


def test_a_real_process_prints_no_traceback(tmp_path):
    """One case end to end as a user runs it: the exit status and stderr of `python -m sprint_desktop.cli`."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sprint_desktop.cli",
            "generate",
            "--prompts-file",
            "/dev/zero",
            "--out-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    one_line(last_line(proc.stderr))

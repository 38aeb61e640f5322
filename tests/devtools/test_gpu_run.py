"""The prepared GPU run (scripts/gpu_run.sh, docs/GPU_RUN.md) on this CPU: the dry run goes
through every section at tiny sizes from a carried real teacher checkpoint, and what it returns
resumes here; the pieces with logic of their own (chunk planner, parallel scene cache, the files
that may come back, the carry size check) are tested directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sprint_desktop.devtools.checkpoints import read, shard_files, unpack
from sprint_desktop.devtools.gpu_train import TrainSettings, build_cache, run_chunks, send_back
from sprint_desktop.devtools.section import Section

from .conftest import VAE, teacher_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dry_run(teacher_run, tmp_path_factory):
    """scripts/gpu_prepare.sh then scripts/gpu_run.sh --dry-run, as docs/GPU_RUN.md says."""
    base = tmp_path_factory.mktemp("gpu")
    env = {**os.environ, "PYTHON": sys.executable}
    prep = subprocess.run(
        [
            "scripts/gpu_prepare.sh",
            "--no-wheels",
            "--teacher",
            str(teacher_run),
            "--carry",
            str(base / "carry"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert prep.returncode == 0, prep.stdout + prep.stderr
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            "scripts/gpu_run.sh",
            "--dry-run",
            "--carry",
            str(base / "carry"),
            "--out",
            str(base / "out"),
            "--work",
            str(base / "work"),
            "--sections",
            "check,bench,kd,train",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    report = json.loads((base / "out" / "gpu_run.json").read_text())
    report["wall_s"] = time.perf_counter() - t0
    return r, report, base


def test_dry_run_goes_through_every_section(dry_run):
    r, report, base = dry_run
    log = (base / "out" / "gpu_run.log").read_text()
    assert r.returncode == 0, r.stdout[-3000:] + log[-5000:]
    sections = report["sections"]
    assert {n: s["status"] for n, s in sections.items()} == dict.fromkeys(
        ("data", "check", "bench", "kd", "teacher", "student"), "ok"
    )
    # check: versions and the gpu-marked tests (collected only, on a CPU)
    check = sections["check"]
    assert check["info"]["versions"]["torch"]["version"] == torch.__version__
    assert "CPUExecutionProvider" in check["info"]["onnxruntime_providers"]
    assert check["gpu_tests"]["rc"] == 0 and "collected" in check["gpu_tests"]["summary"]
    # bench: stock vs ours (with a ControlNet), compiled, ONNX; per-stage medians and parity
    tasks = sections["bench"]["tasks"]
    eager = tasks["tiny eager"]["results"]["1"]
    assert {"stock", "ours_new", "ours_cached", "ours_control"} <= set(eager)
    assert set(eager["ours_new"]) == {"encode_ms", "denoise_ms", "decode_ms", "total_ms"}
    # the same model and noise in fp32: our loop gives the stock pipeline's image
    assert tasks["tiny eager"]["parity_vs_stock"]["1"]["max_abs"] < 1e-4
    assert tasks["tiny compile None"]["parity_vs_eager"]["1"]["max_abs"] < 1e-4
    assert "ours_cached" in tasks["tiny compile None"]["results"]["1"]
    assert tasks["onnx"]["without_controlnet"]["results"]["1"]["onnx_iobinding"]["total_ms"] > 0
    # kd: the carried teacher's pairs (3 shards of 1,000 at most, fewer if its time ran out), a probe,
    # then the cosine call (3 iterations at most in a dry run)
    kd = sections["kd"]
    assert kd["pairs"]["built"] in (1000, 2000, 3000) and kd["config"]["pairs"] == kd["pairs"]["built"]
    assert (
        kd["config"]["mode"] == "kd"
        and kd["probe"]["step"] == 1
        and kd["end_step"] == 1 + kd["probe"]["fits"]
    )
    assert 1 <= kd["probe"]["fits"] <= 3 and "kd" in kd["last"]
    # training: resumed from the carried step-1 checkpoint, then the student from that teacher
    assert sections["teacher"]["carried"]["step"] == 1
    # the probe stopped by SIGTERM before its end, the main call went on from its checkpoint
    probe, main = (c["step"] for c in sections["teacher"]["calls"])
    assert 2 <= probe < main == sections["teacher"]["end_step"] == 25
    assert sections["student"]["end_step"] == 1
    assert sections["student"]["config"]["adv_warmup"] == 4  # the LADD weight rises from 0
    assert "resumed from step 1" in log and f"resumed from step {probe}" in log
    # what comes back fits the device tool: at most 8 files of at most 16 MiB
    files = sorted(p.name for p in (base / "out").iterdir())
    assert len(files) <= 8 and all((base / "out" / f).stat().st_size <= 16 * 2**20 for f in files)
    assert shard_files(base / "out", "teacher-ema") and shard_files(base / "out", "student-hybrid")
    assert shard_files(base / "out", "student-kd")
    assert "teacher" in r.stdout and "files:" in r.stdout  # the summary printed last
    md = subprocess.run(
        [
            sys.executable,
            "-m",
            "sprint_desktop.devtools.gpu_run",
            "report",
            str(base / "out" / "gpu_run.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert "### tiny eager" in md and "| 1 | ours_cached |" in md and "parity vs stock" in md
    print(f"dry run: {report['wall_s']:.0f} s wall")


def test_bound_section_on_request_records_issue_12s_rows(dry_run):
    """``--sections bound`` (not in the default run): weight-free graphs bound to a random checkpoint
    against PyTorch, here the reduced architecture on the CPU provider; summary lines printed."""
    _, _, base = dry_run
    r = subprocess.run(
        [
            "scripts/gpu_run.sh",
            "--dry-run",
            "--sections",
            "bound",
            "--carry",
            str(base / "carry"),
            "--out",
            str(base / "out-bound"),
            "--work",
            str(base / "work-bound"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((base / "out-bound" / "gpu_run.json").read_text())
    assert set(report["sections"]) == {"bound"} and report["sections"]["bound"]["status"] == "ok"
    rows = report["sections"]["bound"]["rows"]
    assert rows["arch"] == "reduced" and rows["binding"]["seconds"] > 0
    assert rows["cpu"]["rows"]["1"]["max_pixel_diff_vs_pytorch"] <= 2
    assert "bound cpu" in r.stdout and "1 step(s)" in r.stdout


def test_returned_teacher_resumes_here_at_the_cpu_learning_rate(dry_run, tmp_path, capsys):
    from sprint_desktop.distill.train_teacher import train

    _, report, base = dry_run
    out = base / "out"
    cfg = teacher_config(tmp_path / "teacher-gpu", iters=26)
    files = shard_files(out, "teacher-ema") + shard_files(out, "teacher-raw")
    run = unpack(files, cfg.out, lr=cfg.lr)
    # the config that came back: the CPU run's VAE, evaluation rhythm and budget, the new folder
    carried = report["sections"]["teacher"]["carried"]["cpu_config"]
    back_config = json.loads((run / "config.json").read_text())
    assert back_config["out"] == str(run)
    for key in ("vae", "eval_every", "log_every", "cpu_budget_min", "threads"):
        assert back_config[key] == carried[key], key
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 25 and state["opt"]["param_groups"][0]["lr"] == pytest.approx(cfg.lr)
    back, _ = read(shard_files(out, "teacher-ema"))
    torch.testing.assert_close(
        state["ema_transformer"]["proj_out.weight"], back["ema_transformer"]["proj_out.weight"]
    )
    assert (run / "transformer" / "config.json").is_file() and (
        run / "tokenizer" / "tokenizer.json"
    ).is_file()
    train(cfg)
    assert "resumed from step 25" in capsys.readouterr().out
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 26


def test_returned_kd_student_unpacks_to_the_transformer_it_trained(dry_run, tmp_path):
    """What comes back of the kd section is the student's EMA: `unpack` makes the transformer
    folder that `sprint evaluate` and packaging read, equal to the one the run saved last."""
    from diffusers import SanaTransformer2DModel

    _, report, base = dry_run
    run = unpack(shard_files(base / "out", "student-kd"), tmp_path / "student-kd")
    back = SanaTransformer2DModel.from_pretrained(run / "transformer")
    saved = SanaTransformer2DModel.from_pretrained(
        Path(report["sections"]["kd"]["config"]["out"]) / "transformer"
    )
    for name, p in saved.state_dict().items():  # fp16 on the way back
        torch.testing.assert_close(back.state_dict()[name], p, atol=2e-3, rtol=2e-3)


def test_pairs_are_built_by_shards_until_the_time_and_judged_as_built(teacher_run, tmp_path, monkeypatch):
    """The kd section's pairs on the device (here the CPU): shards until ``kd_pairs`` or the time,
    each judged in a pool when the student filters (the one-step tiny teacher's samples pass none)."""
    from sprint_desktop.devtools.gpu_train import build_pairs
    from sprint_desktop.distill import pairs

    monkeypatch.setattr(pairs, "SHARD", 4)
    settings = TrainSettings(kd_pairs=10, kd_pair_steps=1, kd_pair_batch=3, workers=2)
    section = Section(tmp_path / "kd.json", time.time() + 600)
    n = build_pairs(section, teacher_run, VAE, tmp_path / "runs", settings, time.time() + 600, "cpu")
    assert n == {"": 12} and section.data["pairs"]["built"] == 12 and section.data["pairs"]["passing"] == 0
    assert len(list((tmp_path / "runs").glob("pairs-*-judged-*.pt"))) == 3
    # past its time, a build stops after the first shard (the cached one is loaded, not rebuilt)
    done = build_pairs(section, teacher_run, VAE, tmp_path / "runs", settings, time.time(), "cpu")
    assert done == {"": 4} and section.data["pairs"]["built"] == 4
    # a share of the shards from the relation stream, spread among the others
    mixed = TrainSettings(
        kd_pairs=16, kd_pair_steps=1, kd_pair_batch=4, kd_pair_filter="", kd_extra_share=0.5
    )
    built = build_pairs(section, teacher_run, VAE, tmp_path / "mixed", mixed, time.time() + 600, "cpu")
    assert built == {"": 8, "relation": 8} and section.data["pairs"]["extra"] == 8
    assert len(list((tmp_path / "mixed").glob("pairs-*-relation-*.pt"))) == 2


def test_the_extra_stream_is_spread_evenly_after_a_first_shard_of_every_family():
    from sprint_desktop.devtools.gpu_train import shard_streams

    assert shard_streams(3, 0.0, "relation") == [("", 0), ("", 1), ("", 2)]
    assert shard_streams(4, 0.5, "relation") == [("", 0), ("relation", 0), ("", 1), ("relation", 1)]
    quarter = shard_streams(8, 0.25, "relation")
    assert [s for s, _ in quarter].count("relation") == 2 and quarter[3] == ("relation", 0)


def test_chunks_aim_at_the_interval_and_end_before_the_deadline(tmp_path):
    """A stand-in trainer (writes the checkpoint and log the real ones write, at 10 ms an iteration
    plus 50 ms a call) drives the real chunk planner."""
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        out: str
        iters: int = 0

    calls: list[tuple[float, int]] = []

    def fake_train(cfg: Cfg) -> None:
        run = Path(cfg.out)
        start = torch.load(run / "checkpoint.pt")["step"] if (run / "checkpoint.pt").exists() else 0
        time.sleep(0.05 + 0.01 * (cfg.iters - start))
        torch.save({"step": cfg.iters}, run / "checkpoint.pt")
        with (run / "log.jsonl").open("a") as f:
            f.write(json.dumps({"step": cfg.iters, "s_per_it": 0.01}) + "\n")
        calls.append((time.time(), cfg.iters - start))

    (tmp_path / "run").mkdir()
    deadline = time.time() + 9.0  # 4 s to use: run_chunks keeps 5 s for the last delivery
    section = Section(tmp_path / "s.json", deadline)
    delivered = []
    settings = TrainSettings(interval_s=0.5, probe=3)
    run_chunks(section, fake_train, Cfg(str(tmp_path / "run")), settings, lambda: delivered.append(1) or {})
    sizes = [n for _, n in calls]
    # the probe, then chunks of about (0.5 s - the measured overhead) / 10 ms: never past the
    # interval, well above the probe even on a busy machine
    assert sizes[0] == 3 and all(20 <= n <= 46 for n in sizes[1:-1])
    assert len(delivered) == len(calls) >= 3
    assert calls[-1][0] <= deadline
    assert section.data["end_step"] == sum(sizes)


def test_discriminator_layers_follow_the_teachers_depth():
    from sprint_desktop.devtools.gpu_train import disc_layers_for

    assert disc_layers_for(8, (2, 5, 7)) == (2, 5, 7)
    assert disc_layers_for(12, (2, 5, 7)) == (3, 8, 10)
    assert disc_layers_for(4, (2, 5, 7)) == (1, 2, 3)
    assert disc_layers_for(1, (2, 5, 7)) == (0,)


def test_parallel_scene_cache_is_the_one_training_would_build(tmp_path):
    from diffusers import AutoencoderDC

    from sprint_desktop.distill import data

    vae_dir = tmp_path / "vae"
    vae_dir.mkdir()
    for f in VAE.iterdir():
        (vae_dir / f.name).write_bytes(f.read_bytes())
    path = build_cache(vae_dir, n=5, seed=3, workers=2, device="cpu")
    vae = AutoencoderDC.from_pretrained(vae_dir).eval()
    expected = data.build(vae, 5, 3)
    cache = data.load_or_build(path, vae, vae_dir, 5, 3)  # accepted as is: same key, same format
    assert cache.captions == expected.captions
    torch.testing.assert_close(cache.latents, expected.latents, atol=1e-5, rtol=1e-4)


def test_weights_come_back_only_while_files_are_left(teacher_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ema = ["ema_transformer", "ema_text_encoder"]
    sent = send_back(teacher_run, out, [("teacher-ema", ema)])
    assert list(sent) == ["teacher-ema.safetensors"] and shard_files(out, "teacher-ema")
    for i in range(4):
        (out / f"other-{i}.safetensors").write_bytes(b"x")
    # 6 weight files may come back: 4 others + teacher-ema leave one, replacing its own file is fine
    assert send_back(teacher_run, out, [("teacher-ema", ema)]) == sent
    assert send_back(teacher_run, out, [("teacher-raw", ["transformer"])], reserve=1)[
        "teacher-raw"
    ].startswith("not sent: needs 1 files, 0 left")
    assert not shard_files(out, "teacher-raw")
    assert "teacher-raw.safetensors" in send_back(teacher_run, out, [("teacher-raw", ["transformer"])])
    assert len(list(out.iterdir())) == 6


def test_prepare_refuses_a_carry_over_the_limit_in_one_line(teacher_run, tmp_path):
    from sprint_desktop.devtools.gpu_run import _tree_mib

    limit = int(_tree_mib(ROOT)) + 2  # the VAE alone (2.8 MiB) does not fit beside the tree
    r = subprocess.run(
        [
            "scripts/gpu_prepare.sh",
            "--no-wheels",
            "--teacher",
            str(teacher_run),
            "--carry",
            str(tmp_path / "c"),
            "--limit-mib",
            str(limit),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and f"over the {limit} MiB limit" in r.stderr
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["teacher_entries"].startswith("EMA only")

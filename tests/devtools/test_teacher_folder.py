"""The GPU run (and a CPU run) starting from the packaged teacher committed in the tree instead of a
carried checkpoint: a real tiny teacher run packaged by `package_teacher`, turned back into a run
folder by `unpack_folder` and resumed by the real training loop; `prepare` carrying only a pointer
to the folder, and the GPU teacher phase's start from that pointer."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from sprint_desktop.devtools.checkpoints import main as checkpoints_main
from sprint_desktop.devtools.checkpoints import unpack_folder
from sprint_desktop.devtools.gpu_run import COMMITTED_TEACHER, _tree_mib
from sprint_desktop.devtools.gpu_run import main as gpu_run_main
from sprint_desktop.devtools.gpu_train import (
    FOLDER_FILE,
    carried_config,
    prepare_vae,
    start_teacher,
    teacher_base,
)
from sprint_desktop.distill.package import package_teacher
from sprint_desktop.distill.sampling import velocity
from sprint_desktop.distill.train_teacher import train as train_teacher

from .conftest import VAE, teacher_config


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def folder(teacher_run, tmp_path_factory) -> Path:
    return package_teacher(str(VAE), str(teacher_run), str(tmp_path_factory.mktemp("pkg") / "teacher"))


@pytest.fixture
def repo(folder, tmp_path) -> Path:
    """A git tree holding the packaged teacher where the repository keeps it (untracked files
    travel as tracked ones do)."""
    root = tmp_path / "repo"
    shutil.copytree(folder, root / COMMITTED_TEACHER)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_packaged_teacher_names_its_run_and_step(folder, teacher_run):
    training = json.loads((folder / "training.json").read_text())
    assert training["config"] == json.loads((teacher_run / "config.json").read_text())
    state = _state(teacher_run)
    assert training["step"] == state["step"] == 1 and training["cpu_s"] == state["cpu_s"]


def test_unpacked_folder_is_the_runs_ema_and_resumes_at_its_step(folder, teacher_run, tmp_path, capsys):
    from sprint_desktop.distill.components import make_transformer

    cfg = teacher_config(tmp_path / "run", iters=2)
    run = unpack_folder(folder, cfg.out, lr=2 * cfg.lr)
    state, before = _state(run), _state(teacher_run)
    assert list(state) == list(before)  # the entries train writes, in its order
    assert state["step"] == 1 and state["cpu_s"] == before["cpu_s"]
    for entry in ("transformer", "text_encoder"):
        assert set(state[entry]) == set(before[entry])
        for k, t in state[entry].items():  # raw = EMA, fp32
            assert t.dtype == torch.float32 and torch.equal(t, state["ema_" + entry][k])
    for k, t in before["ema_text_encoder"].items():  # the text encoder is stored in fp32
        torch.testing.assert_close(state["text_encoder"][k], t, atol=0, rtol=0)
    # the restored transformer (guidance embedding back) is the run's EMA up to fp16 rounding
    shape = dict(patch_size=2, num_layers=1, num_heads=2)
    restored, ema = make_transformer(1, **shape).eval(), make_transformer(2, **shape).eval()
    restored.load_state_dict(state["transformer"])
    ema.load_state_dict(before["ema_transformer"])
    g = torch.Generator().manual_seed(3)
    x, s = torch.randn(2, 32, 8, 8, generator=g), torch.tensor([0.3, 0.8])
    text, mask = torch.randn(2, 16, 128, generator=g), torch.ones(2, 16, dtype=torch.long)
    with torch.no_grad():
        want = velocity(ema, x, s, text, mask)
        torch.testing.assert_close(velocity(restored, x, s, text, mask), want, atol=2e-2, rtol=2e-2)
        assert (velocity(make_transformer(1, **shape).eval(), x, s, text, mask) - want).abs().max() > 0.1
    # fresh moments; param groups and schedule as the run left them, every rate doubled
    assert state["opt"]["state"] == {}
    (group,), (old,) = state["opt"]["param_groups"], before["opt"]["param_groups"]
    assert {k: v for k, v in group.items() if "lr" not in k} == {
        k: v for k, v in old.items() if "lr" not in k
    }
    assert group["lr"] == pytest.approx(2 * old["lr"])
    assert state["sched"]["last_epoch"] == before["sched"]["last_epoch"] == 1
    assert state["sched"]["_last_lr"] == pytest.approx([2 * r for r in before["sched"]["_last_lr"]])
    config = json.loads((run / "config.json").read_text())
    assert config["out"] == str(run) and config["lr"] == pytest.approx(2 * cfg.lr)
    assert config["num_layers"] == 1 and config["vae"] == str(VAE)
    assert json.loads((run / "transformer" / "config.json").read_text())["guidance_embeds"]
    assert (run / "tokenizer" / "tokenizer.json").is_file() and (
        run / "text_encoder" / "config.json"
    ).is_file()
    train_teacher(dataclasses.replace(cfg, lr=2 * cfg.lr))
    assert "resumed from step 1" in capsys.readouterr().out
    assert _state(run)["step"] == 2


def test_unpack_folder_refuses_what_is_no_packaged_teacher_in_one_line(folder, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert checkpoints_main(["unpack-folder", str(tmp_path), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no packaged teacher" in err
    old = tmp_path / "old"
    shutil.copytree(folder, old, ignore=shutil.ignore_patterns("training.json", "*.safetensors"))
    assert checkpoints_main(["unpack-folder", str(old), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sprint distill package-teacher" in err


def test_prepare_from_the_committed_teacher_carries_no_weights_and_the_run_starts_from_it(repo, tmp_path):
    carry = tmp_path / "carry"
    (carry / "vae").mkdir(parents=True)
    (carry / "teacher.safetensors").write_bytes(b"an earlier prepare's")
    (carry / "vae" / "config.json").write_text("{}")
    teacher = repo / COMMITTED_TEACHER
    args = ["prepare", "--no-wheels", "--teacher", str(teacher), "--root", str(repo), "--carry", str(carry)]
    assert gpu_run_main(args) == 0
    pointer = json.loads((carry / FOLDER_FILE).read_text())
    training = json.loads((teacher / "training.json").read_text())
    assert pointer == {"folder": COMMITTED_TEACHER, "training": training}
    # nothing travels beside the tree: the VAE the run names is the folder's own, read from the tree
    assert sorted(p.relative_to(carry).as_posix() for p in carry.rglob("*")) == ["manifest.json", FOLDER_FILE]
    manifest = json.loads((carry / "manifest.json").read_text())
    assert manifest["teacher"]["folder"] == COMMITTED_TEACHER and manifest["carry_mib"] < 0.1
    tree_vae = teacher / "vae" / "config.json"
    tree_vae.write_text(json.dumps({**json.loads(tree_vae.read_text()), "_from": "the tree"}))
    vae = prepare_vae(carry, tmp_path / "work", root=repo)
    assert json.loads((vae / "config.json").read_text())["_from"] == "the tree"

    # the GPU teacher phase's start: the config as base, the run built from the tree's folder
    assert carried_config(carry) == training["config"]
    base = teacher_base(carry)
    run = tmp_path / "work" / "runs" / "teacher"
    record = start_teacher(carry, run, 4 * base["lr"], base, root=repo)
    assert isinstance(record, dict) and record["folder"] == COMMITTED_TEACHER and record["step"] == 1
    assert record["cpu_config"]["num_layers"] == 1
    state = _state(run)
    assert state["step"] == 1 and state["opt"]["param_groups"][0]["lr"] == pytest.approx(4 * base["lr"])
    assert start_teacher(carry, run, base["lr"], base, root=repo) == "already unpacked"
    assert start_teacher(tmp_path / "empty", run, base["lr"], base, root=repo) is None


def test_prepare_carries_the_vae_the_run_names_when_it_is_not_the_folders(repo, tmp_path):
    other = tmp_path / "vae-decoder-tuned"
    shutil.copytree(VAE, other)
    (other / "config.json").write_text(
        json.dumps({**json.loads((VAE / "config.json").read_text()), "scaling_factor": 0.125})
    )
    teacher = repo / COMMITTED_TEACHER
    training = json.loads((teacher / "training.json").read_text())
    training["config"]["vae"] = str(other)
    (teacher / "training.json").write_text(json.dumps(training))
    carry = tmp_path / "carry"
    args = ["prepare", "--no-wheels", "--teacher", str(teacher), "--root", str(repo), "--carry", str(carry)]
    assert gpu_run_main(args) == 0
    vae = prepare_vae(carry, tmp_path / "work", root=repo)
    assert json.loads((vae / "config.json").read_text())["scaling_factor"] == 0.125
    assert json.loads((carry / "manifest.json").read_text())["teacher"]["vae"] == f"carried from {other}"


def test_prepare_refuses_a_teacher_folder_that_does_not_travel(repo, tmp_path, capsys):
    (repo / ".gitignore").write_text("models/\n")
    args = ["prepare", "--no-wheels", "--teacher", str(repo / COMMITTED_TEACHER), "--root", str(repo)]
    assert gpu_run_main([*args, "--carry", str(tmp_path / "carry")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ignored by git" in err


def test_a_checkpoint_over_the_limit_points_at_the_committed_teacher(repo, teacher_run, tmp_path, capsys):
    limit = int(_tree_mib(repo)) + 2  # the VAE alone (2.8 MiB) does not fit beside the tree
    args = ["prepare", "--no-wheels", "--teacher", str(teacher_run), "--root", str(repo)]
    assert gpu_run_main([*args, "--carry", str(tmp_path / "carry"), "--limit-mib", str(limit)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"over the {limit} MiB limit" in err
    assert f"sprint distill package-teacher --vae {VAE} --teacher {teacher_run}" in err
    assert f"prepare with --teacher {COMMITTED_TEACHER}" in err

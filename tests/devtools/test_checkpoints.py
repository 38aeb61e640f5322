"""Carrying a training run to the GPU and back: a real tiny teacher run packed into one fp16
weights-only file, unpacked into a new run folder, and resumed by the real training loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sprint_desktop.devtools.checkpoints import CarryError, main, pack, read, shard_files, unpack
from sprint_desktop.distill.train_teacher import train as train_teacher

from .conftest import teacher_config as _cfg


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_pack_keeps_weights_in_fp16_and_the_rest_exactly(teacher_run, tmp_path):
    (packed,) = pack(teacher_run, tmp_path / "teacher.safetensors")
    state = _state(teacher_run)
    back, meta = read([packed])
    assert back["step"] == state["step"] == 1
    assert back["sched"] == json.loads(json.dumps(state["sched"]))
    assert (
        back["opt"]["state"] == {}
        and back["opt"]["param_groups"][0]["lr"] == state["opt"]["param_groups"][0]["lr"]
    )
    for entry in ("transformer", "text_encoder", "ema_transformer", "ema_text_encoder"):
        assert set(back[entry]) == set(state[entry])
        for k, t in state[entry].items():
            assert back[entry][k].dtype == t.dtype
            torch.testing.assert_close(back[entry][k], t, atol=2e-3, rtol=1e-3)
    # half the bytes of the fp32 weights (plus a small header)
    n_bytes = sum(
        t.numel() * 4
        for e in ("transformer", "ema_transformer", "text_encoder", "ema_text_encoder")
        for t in state[e].values()
    )
    assert packed.stat().st_size < 0.55 * n_bytes
    assert meta["pretrained"]["transformer/diffusion_pytorch_model.safetensors"] == "ema_transformer"
    assert "config.json" in meta["files"] and "tokenizer/tokenizer.json" in meta["files"]


def test_unpacked_run_resumes_at_the_new_learning_rate(teacher_run, tmp_path, capsys):
    (packed,) = pack(teacher_run, tmp_path / "teacher.safetensors")
    cfg = _cfg(tmp_path / "gpu", iters=2)
    run = unpack([packed], cfg.out, lr=2 * cfg.lr)
    assert _state(run)["opt"]["param_groups"][0]["lr"] == pytest.approx(2 * cfg.lr)
    train_teacher(cfg)
    assert "resumed from step 1" in capsys.readouterr().out
    state = _state(run)
    assert state["step"] == 2
    # warm-up of 1 step: the schedule's factor is 1, so the optimizer runs at the rescaled rate
    assert state["opt"]["param_groups"][0]["lr"] == pytest.approx(2 * cfg.lr)


def test_ema_only_file_resumes_with_raw_weights_from_the_ema(teacher_run, tmp_path):
    from diffusers import SanaTransformer2DModel

    (packed,) = pack(teacher_run, tmp_path / "ema.safetensors", ["ema_transformer", "ema_text_encoder"])
    run = unpack([packed], tmp_path / "back")
    state = _state(run)
    for k, t in state["ema_transformer"].items():
        torch.testing.assert_close(state["transformer"][k], t)
    # the pretrained folder is rewritten from the EMA and loads in diffusers
    model = SanaTransformer2DModel.from_pretrained(run / "transformer")
    torch.testing.assert_close(
        model.state_dict()["proj_out.weight"], state["ema_transformer"]["proj_out.weight"]
    )
    assert json.loads((run / "config.json").read_text())["iters"] == 1


def test_bad_inputs_say_one_line(teacher_run, tmp_path, capsys):
    with pytest.raises(CarryError, match="no module entry"):
        pack(teacher_run, tmp_path / "x.safetensors", ["nope"])
    with pytest.raises(CarryError, match="no checkpoint.pt"):
        pack(tmp_path, tmp_path / "x.safetensors")
    not_packed = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(not_packed))
    assert main(["unpack", str(not_packed), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a packed checkpoint" in err
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    assert main(["unpack", str(tmp_path / "junk.safetensors"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_split_files_stay_under_the_limit_and_are_needed_together(teacher_run, tmp_path):
    whole, _ = read(pack(teacher_run, tmp_path / "one" / "t.safetensors"))
    whole_size = sum(p.stat().st_size for p in shard_files(tmp_path / "one", "t")) / 2**20
    limit = whole_size / 3
    parts = pack(teacher_run, tmp_path / "t.safetensors", max_mib=limit)
    assert len(parts) >= 3 and parts == shard_files(tmp_path, "t")
    assert all(p.stat().st_size <= limit * 2**20 for p in parts)
    back, _ = read(parts)
    for entry in ("transformer", "ema_text_encoder"):
        for k, t in whole[entry].items():
            assert torch.equal(back[entry][k], t)
    with pytest.raises(CarryError, match="missing"):
        read(parts[1:])

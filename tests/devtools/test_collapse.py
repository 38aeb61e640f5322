"""A teacher that collapses on the GPU: its collapsed checkpoints are never sent, and it resumes
from the last good one at a lower learning rate (session 6's H200 run lost a 0.63 teacher so)."""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from sprint_desktop.devtools.collapse import GOOD, CollapseGuard
from sprint_desktop.devtools.gpu_train import TrainSettings, run_stoppable
from sprint_desktop.devtools.section import Section


def test_a_loss_far_above_the_best_is_a_collapse_and_noise_is_not():
    guard = CollapseGuard(ratio=1.5, loss_ratio=10.0)
    # session 6's evaluations (validation loss of the EMA, training loss of the batch), then the collapse
    for step, val, loss in [
        (8008, 0.178, 0.061),
        (8372, 0.168, 0.064),
        (8736, 0.155, 0.060),
        (10000, None, 0.12),  # a noisy batch between evaluations
        (10192, 0.131, 0.0545),
        (10200, 0.19, 0.07),  # worse, within 1.5x
    ]:
        assert not guard.collapsed({"step": step, "val_loss": val, "loss": loss})
    assert (guard.best, guard.lowest_loss) == (0.131, 0.0545)
    assert not guard.collapsed({"step": 10210})  # nothing measured: nothing to tell
    assert guard.collapsed({"step": 10300, "loss": 1.697})  # a stop's checkpoint: training loss only
    assert guard.collapsed({"step": 10556, "val_loss": 1.393, "loss": 0.099})
    assert guard.collapsed({"step": 10556, "val_loss": 1.393, "loss": 0.099})  # again: one event
    assert [e["step"] for e in guard.collapses] == [10300, 10556]
    assert guard.collapsed({"step": 10600, "val_loss": math.nan})
    assert (guard.best, guard.lowest_loss) == (0.131, 0.0545)  # a collapse moves no reference


@pytest.fixture
def own_signals():
    """The stand-in loop installs a SIGTERM handler as the real one does: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@dataclass
class Cfg:
    out: str
    iters: int = 10**9
    lr: float = 1.0
    eval_every: int = 10**9
    reported_s_it: float = 0.004  # the speed the loop's records claim (what the planner reads)


COLLAPSE_AT, SAFE_LR, S_IT = 150, 0.75, 0.004


def fake_teacher(cfg: Cfg) -> None:
    """The teacher loop's contract with `run_stoppable`: resumes from ``checkpoint.pt`` (step and
    the optimizer's lr), checkpoints and logs a record every ``eval_every`` steps (with the EMA's
    validation loss) and when SIGTERM asks. Its weights blow up past step ``COLLAPSE_AT`` when the
    lr is above ``SAFE_LR``, and stay blown up."""
    from sprint_desktop.distill.train_teacher import StopRequest, save_checkpoint

    run = Path(cfg.out)
    ckpt = run / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True) if ckpt.exists() else {"step": 0, "broken": False}
    lr = float(state.get("opt", {"param_groups": [{"lr": cfg.lr}]})["param_groups"][0]["lr"])
    step, broken = int(state["step"]), bool(state["broken"])
    stop = StopRequest()
    with (run / "log.jsonl").open("a") as log:
        while step < cfg.iters:
            time.sleep(S_IT)
            step += 1
            broken = broken or (lr > SAFE_LR and step >= COLLAPSE_AT)
            evaluate = step % cfg.eval_every == 0
            if evaluate or stop.asked:
                save_checkpoint(ckpt, {"step": step, "broken": broken, "opt": {"param_groups": [{"lr": lr}]}})
                rec = {"step": step, "loss": 1.7 if broken else 0.05, "s_per_it": cfg.reported_s_it}
                if evaluate:
                    rec["val_loss"] = 1.4 if broken else 0.2 - step * 1e-4
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if stop.asked:
                return


def test_a_collapse_is_not_sent_and_the_teacher_resumes_from_its_last_good_checkpoint(tmp_path, own_signals):
    run = tmp_path / "run"
    run.mkdir()
    sent: list[tuple[int, bool]] = []

    def deliver():  # as the teacher phase's: packs the checkpoint that passed the check
        state = torch.load(run / GOOD, weights_only=True)
        sent.append((int(state["step"]), bool(state["broken"])))
        return {"teacher-ema.safetensors": 1.0}

    section = Section(tmp_path / "s.json", time.time() + 12.0)
    settings = TrainSettings(probe_s=0.1, interval_s=0.3, stop_margin_s=1.0)
    run_stoppable(section, fake_teacher, Cfg(str(run)), settings, deliver)

    data = section.data
    assert data["collapses"], "the stand-in collapses at lr 1.0: the guard must have seen it"
    assert sent and not any(broken for _, broken in sent), "a collapsed checkpoint was sent"
    lrs = [c["lr"] for c in data["calls"]]
    assert lrs[0] == lrs[1] == 1.0 and lrs[2] == 0.5  # probe, collapsed call, the resumed one
    final = torch.load(run / "checkpoint.pt", weights_only=True)
    assert not final["broken"] and final["opt"]["param_groups"][0]["lr"] == 0.5
    assert final["step"] > data["collapses"][0]["step"]  # trained on past the collapse, at 0.5
    assert sent[-1][0] == final["step"]  # and that went out
    assert torch.load(run / GOOD, weights_only=True)["step"] == final["step"]


def test_a_teacher_that_collapses_again_and_again_ends_at_its_last_good_checkpoint(tmp_path, own_signals):
    """Resumed at the same learning rate (``collapse_lr`` 1), the stand-in collapses at every try
    until the deadline: whatever state the last try was stopped in, the run folder is left at the
    last good checkpoint (the student phase and `unpack` read it), and nothing collapsed went out."""
    run = tmp_path / "run"
    run.mkdir()
    sent: list[bool] = []

    def deliver():
        sent.append(bool(torch.load(run / GOOD, weights_only=True)["broken"]))
        return {}

    section = Section(tmp_path / "s.json", time.time() + 8.0)
    settings = TrainSettings(probe_s=0.1, interval_s=0.3, stop_margin_s=0.5, collapse_lr=1.0)
    run_stoppable(section, fake_teacher, Cfg(str(run)), settings, deliver)
    data = section.data
    assert len(data["calls"]) >= 3 and {c["lr"] for c in data["calls"]} == {1.0}
    final = torch.load(run / "checkpoint.pt", weights_only=True)
    assert not final["broken"] and final["step"] < COLLAPSE_AT
    assert final == torch.load(run / GOOD, weights_only=True)
    assert data["end_step"] == final["step"]
    assert sent and not any(sent)

"""Knowledge distillation on the teacher's ODE pairs (`distill.pairs`): the pairs are the teacher's
own samples, cached by key, and the regression teaches the student's first step."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

from sprint_desktop.core.errors import SprintError
from sprint_desktop.distill import pairs
from sprint_desktop.distill.components import make_text_encoder, make_tokenizer, make_transformer
from sprint_desktop.distill.package import with_guidance_embedding
from sprint_desktop.distill.sampling import encode_text, euler_sample

from .configs import tiny_student, tiny_teacher, tiny_vae

VAE = Path(__file__).resolve().parents[2] / "models" / "sprint-shapes" / "vae"


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    tok = make_tokenizer()
    return tok, make_text_encoder(len(tok)).eval(), with_guidance_embedding(make_transformer()).eval()


def test_pairs_are_the_teachers_samples_from_their_noise_and_are_cached_in_shards(
    parts, tmp_path, monkeypatch
):
    tok, te, teacher = parts
    monkeypatch.setattr(pairs, "SHARD", 2)
    shard = tmp_path / "shard.pt"
    cache = pairs.load_or_build_shard(shard, teacher, tok, te, seed=5, steps=2, k=0)
    assert len(cache) == 2 and cache.noise.shape == cache.target.shape == (2, 32, 8, 8)
    assert set(cache.guidance.tolist()) <= {4.0, 4.5, 5.0} and all(cache.captions)
    for i in range(2):  # each target is the 2-step Euler sample of its caption from its noise
        again = euler_sample(
            teacher,
            tok,
            te,
            [cache.captions[i]],
            2,
            float(cache.guidance[i]),
            0,
            noise=cache.noise[i : i + 1],
        )
        torch.testing.assert_close(cache.target[i : i + 1], again, rtol=1e-4, atol=1e-5)
    # the same key loads the file; another key (more steps) builds other pairs over it
    stamp = shard.stat().st_mtime_ns
    assert pairs.load_or_build_shard(shard, teacher, tok, te, seed=5, steps=2, k=0).captions == cache.captions
    assert shard.stat().st_mtime_ns == stamp
    other = pairs.load_or_build_shard(shard, teacher, tok, te, seed=5, steps=1, k=0)
    assert not torch.equal(other.target, cache.target)


def test_the_teacher_samples_any_number_of_pairs_at_once_and_gives_the_same_pairs(parts):
    """A GPU builds a shard in a few large batches (`gpu_train.kd_phase`): the captions, guidance
    (one value per chunk of 4 here, several values in one batch) and noise are drawn as before, and
    each pair's target is its own guided sample."""
    tok, te, teacher = parts
    small = pairs.build(teacher, tok, te, 10, seed=3, steps=2, chunk=4, batch=3)
    large = pairs.build(teacher, tok, te, 10, seed=3, steps=2, chunk=4, batch=10)
    assert small.captions == large.captions and torch.equal(small.noise, large.noise)
    assert torch.equal(small.guidance, large.guidance) and len(set(large.guidance.tolist())) > 1
    torch.testing.assert_close(small.target, large.target, rtol=1e-4, atol=1e-5)


def test_the_judge_filter_keeps_the_pairs_whose_target_shows_its_caption(parts, tmp_path, monkeypatch):
    """``--pair-filter judge``: targets 0 and 2 are made the VAE's latents of their own scenes (they
    show their captions), 1 and 3 stay the random teacher's samples (they show nothing); only 0 and
    2 are kept, and the judgement is cached beside the shard."""
    from diffusers import AutoencoderDC

    from sprint_desktop.distill.data import load_keyed, save_keyed
    from sprint_desktop.distill.train_vae import to_tensor
    from sprint_desktop.distill.world import render, sample_scene

    tok, te, teacher = parts
    monkeypatch.setattr(pairs, "SHARD", 4)
    key = pairs.vae_fingerprint
    monkeypatch.setattr(
        pairs,
        "vae_fingerprint",
        lambda folder: "teacherkey" if str(folder) == "t/transformer" else key(folder),
    )
    vae = AutoencoderDC.from_pretrained(VAE).eval()
    cache = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=4, seed=0, steps=1)
    rng = np.random.default_rng(0)  # shard 0 of seed 0: its scenes are the first four of this generator
    scenes = [sample_scene(rng, held_out=False) for _ in range(4)]
    assert [s.caption for s in scenes] == cache.captions
    with torch.no_grad():
        real = vae.encode(to_tensor(np.stack([render(s) for s in scenes]))).latent * vae.config.scaling_factor
    shard = pairs.shard_path(tmp_path, "t", 0, 1, 0)
    state = load_keyed(shard, {"seed": 0, "steps": 1, "shard": 0, "size": 4})
    state["target"][[0, 2]] = real[[0, 2]]
    save_keyed(shard, json.loads(state.pop("key")), state)
    kept = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=4, seed=0, steps=1, judged_by=(vae, VAE))
    assert kept.captions == [cache.captions[0], cache.captions[2]]
    torch.testing.assert_close(kept.target, real[[0, 2]])
    judged = list(tmp_path.glob("pairs-teacherkey-seed0-1steps-0000-judged-*.pt"))
    assert len(judged) == 1
    # a GPU machine judges in a pool of processes: the same verdicts
    mixed = pairs.PairCache(state["noise"], state["target"], json.loads(state["captions"]), state["guidance"])
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pairs.passing(mixed, vae, pool).tolist() == [True, False, True, False]
    monkeypatch.setattr(pairs, "passing", lambda *a: pytest.fail("judged again"))
    again = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=4, seed=0, steps=1, judged_by=(vae, VAE))
    assert again.captions == kept.captions


def test_family_balance_draws_each_caption_family_equally_often():
    """Three single objects for every relation (as after the judge's filter): balanced draws give
    each family half the batch, uniform ones a quarter to the relation."""
    from sprint_desktop.distill.judge import parse_caption

    captions = [
        "a red circle",
        "a blue square",
        "a green triangle",
        "a red circle left of a blue square",
    ] * 25
    cache = pairs.PairCache(torch.zeros(100, 1), torch.zeros(100, 1), captions, torch.zeros(100))
    p = pairs.family_balance(cache)
    assert p.sum() == pytest.approx(1.0) and p[3] == pytest.approx(3 * p[0])
    rng = np.random.default_rng(0)
    for weights, share in ((p, 0.5), (None, 0.25)):
        drawn = [parse_caption(c).family for c in cache.batch(rng, 4000, weights)[2]]
        assert drawn.count("relation") / 4000 == pytest.approx(share, abs=0.03)


def test_a_cache_of_n_pairs_is_its_first_shards_and_grows_by_shards(parts, tmp_path, monkeypatch):
    tok, te, teacher = parts
    monkeypatch.setattr(pairs, "SHARD", 2)
    monkeypatch.setattr(pairs, "vae_fingerprint", lambda folder: "teacherkey")  # an in-memory teacher
    later = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=5, seed=0, steps=1, first=1)
    assert len(later) == 3 and len(list(tmp_path.glob("pairs-teacherkey-seed0-1steps-*.pt"))) == 2
    whole = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=5, seed=0, steps=1)  # builds shard 0
    assert len(whole) == 5 and len(list(tmp_path.glob("pairs-*.pt"))) == 3
    torch.testing.assert_close(whole.target[2:], later.target)  # shards 1-2 were loaded, not rebuilt
    assert whole.captions[2:] == later.captions and not torch.equal(whole.noise[:2], whole.noise[2:4])
    with pytest.raises(SprintError, match="no pairs"):
        pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=2, seed=0, steps=1, first=3)


def test_a_family_stream_holds_only_that_familys_captions_in_shards_of_its_own(parts, tmp_path, monkeypatch):
    """``--family relation``: a stream of relation captions with its own noise and file names, next
    to the stream of every family, which it leaves as it is."""
    from sprint_desktop.distill.judge import parse_caption

    tok, te, teacher = parts
    monkeypatch.setattr(pairs, "SHARD", 6)
    monkeypatch.setattr(pairs, "vae_fingerprint", lambda folder: "teacherkey")
    every = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=6, seed=0, steps=1)
    rel = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=6, seed=0, steps=1, family="relation")
    assert {parse_caption(c).family for c in rel.captions} == {"relation"}
    assert len({parse_caption(c).family for c in every.captions}) > 1
    assert not torch.equal(rel.noise, every.noise)
    names = sorted(p.name for p in tmp_path.glob("pairs-*.pt"))
    assert names == [
        "pairs-teacherkey-seed0-1steps-0000.pt",
        "pairs-teacherkey-seed0-1steps-relation-0000.pt",
    ]
    again = pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=6, seed=0, steps=1, family="relation")
    assert again.captions == rel.captions and torch.equal(again.target, rel.target)
    both = pairs.concat([every, rel])
    assert len(both) == 12 and both.captions == every.captions + rel.captions
    with pytest.raises(SprintError, match="no pair stream 'relations'"):
        pairs.load_or_build(tmp_path, "t", teacher, tok, te, n=6, seed=0, steps=1, family="relations")


def test_kd_loss_is_the_students_first_step_against_the_target_and_training_lowers_it(parts):
    tok, te, teacher = parts
    torch.manual_seed(1)
    student = with_guidance_embedding(make_transformer())
    noise, target = torch.randn(2, 32, 8, 8), torch.randn(2, 32, 8, 8)
    w = torch.tensor([4.5, 4.0])
    with torch.no_grad():
        cond = encode_text(tok, te, ["a red circle", "two blue squares"], "cpu")
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = pairs.kd_loss(student, noise, target, cond, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # zero exactly when the target is the student's own first step
    with torch.no_grad():
        own = pairs.kd_loss(student, noise, torch.zeros_like(target), cond, w)
        x_t, t = 0.5 * noise, torch.full((2,), pairs.T_MAX)
        from sprint_desktop.distill.scm import consistency_x0

        first = consistency_x0(student, x_t, t, *cond, w * 0.1) / 0.5
        assert pairs.kd_loss(student, noise, first, cond, w).item() < 1e-10
        assert own.item() == pytest.approx(first.pow(2).mean().item(), rel=1e-5)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    from sprint_desktop.distill.train_teacher import train as train_teacher
    from sprint_desktop.distill.train_vae import train as train_vae

    vae = train_vae(tiny_vae(tmp_path_factory.mktemp("vae"), iters=1))
    return vae, train_teacher(tiny_teacher(vae, tmp_path_factory.mktemp("teacher")))


def test_sprint_distill_pairs_builds_the_shards_a_student_then_loads(teacher_run, tmp_path, monkeypatch):
    from sprint_desktop.cli import main

    monkeypatch.setattr(pairs, "SHARD", 2)
    _, teacher = teacher_run
    args = ["distill", "pairs", "--teacher", str(teacher), "--out", str(tmp_path), "--steps", "1"]
    assert main([*args, "--pairs", "3", "--first", "1"]) == 0  # a second builder's share: shard 1
    assert [p.name[-7:] for p in tmp_path.glob("pairs-*.pt")] == ["0001.pt"]
    assert main([*args, "--pairs", "3"]) == 0
    assert sorted(p.name[-7:] for p in tmp_path.glob("pairs-*.pt")) == ["0000.pt", "0001.pt"]


def test_student_trains_on_the_pairs_alone_or_beside_scm(teacher_run, tmp_path, monkeypatch):
    from sprint_desktop.distill.judge import parse_caption
    from sprint_desktop.distill.train_student import load_pairs
    from sprint_desktop.distill.train_student import train as train_student

    monkeypatch.setattr(pairs, "SHARD", 4)
    vae, teacher = teacher_run
    out = train_student(
        tiny_student(teacher, vae, tmp_path / "runs" / "kd", mode="kd", pairs=4, pair_steps=1)
    )
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(r["kd"] > 0 and "scm" not in r and "d" not in r for r in log)
    assert len(list((tmp_path / "runs").glob("pairs-*"))) == 1 and (out / "transformer").exists()
    both = train_student(tiny_student(teacher, vae, tmp_path / "runs" / "both", pairs=4, pair_steps=1))
    log = [json.loads(line) for line in (both / "log.jsonl").read_text().splitlines()]
    assert all("kd" in r and "scm" in r for r in log)
    assert len(list((tmp_path / "runs").glob("pairs-*"))) == 1  # the second run reused the pairs
    # a later run on shard 1 of the pairs and on the relation stream: their captions are what it learns
    more = train_student(
        tiny_student(
            teacher,
            vae,
            tmp_path / "runs" / "more",
            mode="kd",
            pairs=8,
            pairs_first=1,
            pair_steps=1,
            extra_pairs=4,
            extra_family="relation",
        )
    )
    assert sorted(p.name.split("seed0-")[1] for p in (tmp_path / "runs").glob("pairs-*")) == [
        "1steps-0000.pt",
        "1steps-0001.pt",
        "1steps-relation-0000.pt",
    ]
    assert (more / "transformer").exists()
    cfg = tiny_student(
        teacher, vae, tmp_path / "runs" / "more", pairs=8, pairs_first=1, pair_steps=1, extra_pairs=4
    )
    learnt = load_pairs(cfg, tmp_path / "runs", pairs.load_teacher(teacher), None)
    shard1 = pairs.load_or_build(tmp_path / "runs", teacher, *pairs.load_teacher(teacher), 8, 0, 1, first=1)
    assert learnt.captions[:4] == shard1.captions and len(learnt) == 8
    assert {parse_caption(c).family for c in learnt.captions[4:]} == {"relation"}
    # two ranges of the every-family stream (two builders' shards, a gap between them): 0 and 2, not 1
    cfg = tiny_student(
        teacher,
        vae,
        tmp_path / "runs" / "more",
        pairs=4,
        pair_steps=1,
        extra_pairs=12,
        extra_first=2,
        extra_family="",
    )
    learnt = load_pairs(cfg, tmp_path / "runs", pairs.load_teacher(teacher), None)
    shard = {
        k: pairs.load_or_build(
            tmp_path / "runs", teacher, *pairs.load_teacher(teacher), 4 * k + 4, 0, 1, first=k
        )
        for k in (0, 2)
    }
    assert learnt.captions == shard[0].captions + shard[2].captions
    with pytest.raises(SprintError, match="--extra-pairs 8 ends before shard --extra-first 2 starts"):
        train_student(
            tiny_student(
                teacher, vae, tmp_path / "runs" / "none", mode="kd", pairs=4, extra_pairs=8, extra_first=2
            )
        )
    with pytest.raises(SprintError, match="--pairs 4 ends before shard --pairs-first 1 starts"):
        train_student(
            tiny_student(teacher, vae, tmp_path / "runs" / "none", mode="kd", pairs=4, pairs_first=1)
        )
    with pytest.raises(SprintError, match="--pairs"):
        train_student(tiny_student(teacher, vae, tmp_path / "runs" / "none", mode="kd"))
    with pytest.raises(SprintError, match="--extra-pairs adds to"):
        train_student(tiny_student(teacher, vae, tmp_path / "runs" / "none", extra_pairs=4))
    with pytest.raises(SprintError, match="--pair-filter must be"):
        train_student(
            tiny_student(teacher, vae, tmp_path / "runs" / "f", mode="kd", pairs=4, pair_filter="clip")
        )
    # the one-step teacher's samples show nothing: a filtered run says so in one line, before training
    with pytest.raises(SprintError, match="no pair passes the judge"):
        train_student(
            tiny_student(
                teacher, vae, tmp_path / "runs" / "f", mode="kd", pairs=4, pair_steps=1, pair_filter="judge"
            )
        )
    assert (
        not (tmp_path / "runs" / "f" / "log.jsonl").exists()
        or not (tmp_path / "runs" / "f" / "log.jsonl").read_text()
    )


def test_fit_reports_each_students_error_and_judge_on_the_pairs(teacher_run, tmp_path, monkeypatch, capsys):
    """The teacher's own row has error 0; a student's error is its kd loss over the pairs, and its
    judge is of its decoded first steps."""
    from diffusers import AutoencoderDC

    monkeypatch.setattr(pairs, "SHARD", 3)
    vae, teacher = teacher_run
    args = [
        "fit",
        "--teacher",
        str(teacher),
        "--vae",
        str(vae),
        "--runs",
        str(tmp_path),
        "--pairs",
        "3",
        "--steps",
        "1",
    ]
    pairs.main([*args, str(teacher / "transformer")])  # the teacher as a "student": one step from noise
    out = capsys.readouterr().out
    assert "3 pairs" in out and "| teacher (targets) | 0.0 |" in out
    tok, te = make_tokenizer(), make_text_encoder(len(make_tokenizer()))
    student = with_guidance_embedding(make_transformer()).eval()
    cache = pairs.load_or_build(tmp_path, teacher, student, tok, te, 3, 0, 1)  # loads the shard
    x = pairs.first_steps(student, cache, tok, te)
    with torch.no_grad():
        cond = encode_text(tok, te, cache.captions, "cpu")
        loss = pairs.kd_loss(student, cache.noise, cache.target, cond, cache.guidance)
    rows = pairs.fit_rows(cache, AutoencoderDC.from_pretrained(vae).eval(), {"s": x})
    assert rows[0]["mse"] == 0.0 and rows[1]["mse"] == pytest.approx(loss.item(), abs=1e-4)
    assert all(0.0 <= r["judge"] <= 1.0 for r in rows)


def test_a_folder_that_is_no_teacher_gets_one_line(teacher_run, tmp_path, capsys):
    from sprint_desktop.cli import main
    from sprint_desktop.distill.train_student import train as train_student

    vae, teacher = teacher_run
    (tmp_path / "half" / "transformer").mkdir(parents=True)
    (tmp_path / "half" / "transformer" / "config.json").write_text("{}")
    assert main(["distill", "pairs", "--teacher", str(tmp_path / "half"), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.endswith("is not a teacher folder: it has no text_encoder/") and "\n" not in err
    with pytest.raises(SprintError, match="no transformer/ or text_encoder/"):
        train_student(tiny_student(tmp_path / "nowhere", vae, tmp_path / "s", mode="kd", pairs=4))
    assert not list(tmp_path.glob("pairs-*"))  # nothing was built


def test_judged_reports_the_teachers_passing_samples_per_family(teacher_run, tmp_path, monkeypatch, capsys):
    """``python -m sprint_desktop.distill.pairs judged``: the one-step tiny teacher's samples pass
    nothing, and the verdicts are cached beside the shards, where a filtered student finds them."""
    monkeypatch.setattr(pairs, "SHARD", 3)
    vae, teacher = teacher_run
    common = ["--teacher", str(teacher), "--vae", str(vae), "--runs", str(tmp_path), "--pairs", "6"]
    pairs.main(["judged", *common, "--steps", "1"])
    out = capsys.readouterr().out
    assert "6 pairs (shards 0 on)" in out and "| all | 6 | 0 | 0.0 | 0.0 |" in out
    assert len(list(tmp_path.glob("pairs-*-judged-*.pt"))) == 2
    pairs.main(["judged", *common, "--steps", "1", "--family", "relation"])  # the relation stream alone
    out = capsys.readouterr().out
    assert "| relation | 6 | 0 | 0.0 | 0.0 |" in out and "| single |" not in out
    assert len(list(tmp_path.glob("pairs-*-relation-*-judged-*.pt"))) == 2
    # the rates and shares themselves, on pairs of which some pass
    every = pairs.PairCache(
        torch.zeros(4, 1), torch.zeros(4, 1), ["a red circle"] * 3 + ["two blue squares"], torch.zeros(4)
    )
    passed = pairs.subset(every, torch.tensor([True, True, False, True]))
    rows = {r["family"]: r for r in pairs.family_rows(every, passed)}
    assert rows["single"] == {"family": "single", "pairs": 3, "passing": 2, "rate": 0.667, "share": 0.667}
    assert rows["all"]["rate"] == 0.75 and rows["counting"]["share"] == 0.333

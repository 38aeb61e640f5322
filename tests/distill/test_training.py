"""The training scripts run end to end at tiny sizes, save their config, and resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from sprint_desktop.core.errors import SprintError
from sprint_desktop.distill.components import make_transformer
from sprint_desktop.distill.sampling import euler_sample
from sprint_desktop.distill.train_teacher import TeacherConfig
from sprint_desktop.distill.train_teacher import train as train_teacher
from sprint_desktop.distill.train_vae import gradient_loss
from sprint_desktop.distill.train_vae import train as train_vae

from .configs import tiny_student, tiny_teacher, tiny_vae
from .grids import assert_one_tile_per_grid_prompt


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    return train_vae(tiny_vae(tmp_path_factory.mktemp("vae"), iters=2))


def test_vae_training_saves_config_checkpoint_and_model(vae_dir):
    out = vae_dir.parent
    assert json.loads((out / "config.json").read_text())["iters"] == 2
    assert (out / "checkpoint.pt").exists() and (vae_dir / "config.json").exists()
    stats = json.loads((out / "vae_eval.json").read_text())
    assert 0 <= stats["judge"] <= 1 and stats["latent_std"] > 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]


def test_vae_training_resumes(vae_dir, capsys):
    out = vae_dir.parent
    train_vae(tiny_vae(out, iters=3))
    assert "resumed from step 2" in capsys.readouterr().out
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]


def test_gradient_loss_is_zero_for_equal_images_and_sees_edges():
    x = torch.zeros(1, 3, 8, 8)
    y = x.clone()
    y[..., 4:, :] = 1
    assert gradient_loss(x, x) == 0
    assert gradient_loss(x, y) > 0


def test_teacher_training_two_steps_and_resume(vae_dir, tmp_path, capsys):
    cfg = tiny_teacher(vae_dir, tmp_path / "t", iters=2, batch=4, eval_every=2, eval_images=4, eval_steps=2)
    out = train_teacher(cfg)
    assert (out / "transformer" / "config.json").exists() and (out / "text_encoder" / "config.json").exists()
    assert (out / "tokenizer" / "tokenizer.json").exists()
    first = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert first[-1]["step"] == 2 and "judge_all" in first[-1]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    init = make_transformer(
        cfg.seed, patch_size=cfg.patch_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads
    ).state_dict()
    # the EMA warms up: after two steps it is near the trained weights, not the random init
    for name in ("proj_out.weight", "transformer_blocks.0.attn1.to_q.weight"):
        raw, ema = state["transformer"][name], state["ema_transformer"][name]
        assert (ema - raw).norm() < 0.5 * (init[name] - raw).norm()
    train_teacher(dataclasses.replace(cfg, iters=3))
    assert "resumed from step 2" in capsys.readouterr().out


def test_teacher_evaluates_and_checkpoints_when_eval_every_is_no_multiple_of_log_every(vae_dir, tmp_path):
    # The GPU run sets eval_every from the measured speed (469 against log_every 25): evaluations
    # and checkpoints must not wait for a step that is due for both.
    cfg = tiny_teacher(vae_dir, tmp_path / "t", iters=4, log_every=3, eval_every=2)
    out = train_teacher(cfg)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3, 4]
    assert ["judge_all" in r for r in log] == [True, False, True]


def test_vae_evaluates_when_eval_every_is_no_multiple_of_log_every(tmp_path):
    out = train_vae(tiny_vae(tmp_path / "v", iters=2, log_every=3, eval_every=2))
    log = [json.loads(line) for line in (out.parent / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2] and "judge" in log[0]


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state; a run with another precision needs a fresh one."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_teacher_trains_from_a_latent_cache_in_bf16(vae_dir, tmp_path, fresh_accelerate_state):
    cfg = tiny_teacher(
        vae_dir, tmp_path / "t", iters=2, batch=4, eval_every=2, cache=8, mixed_precision="bf16"
    )
    out = train_teacher(cfg)
    assert (vae_dir.parent / "latents-8-seed0.pt").exists()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)


def test_euler_sampler_is_seeded(vae_dir):
    from sprint_desktop.distill.components import make_text_encoder, make_tokenizer, make_transformer

    tok = make_tokenizer()
    te, tf = make_text_encoder(len(tok)), make_transformer()
    a = euler_sample(tf, tok, te, ["a red circle"], steps=2, guidance=4.5, seed=3)
    b = euler_sample(tf, tok, te, ["a red circle"], steps=2, guidance=4.5, seed=3)
    assert a.shape == (1, 32, 8, 8)
    torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def teacher(vae_dir, tmp_path_factory):
    """One 1-step teacher run that the student and packaging tests start from."""
    return train_teacher(tiny_teacher(vae_dir, tmp_path_factory.mktemp("teacher-for-students")))


@pytest.mark.parametrize(
    "mode",
    ["hybrid", pytest.param("scm", marks=pytest.mark.slow), pytest.param("ladd", marks=pytest.mark.slow)],
)
def test_student_distillation_two_steps(vae_dir, teacher, tmp_path_factory, mode):
    from sprint_desktop.distill.train_student import train as train_student

    out = train_student(
        tiny_student(
            teacher,
            vae_dir,
            tmp_path_factory.mktemp(mode),
            mode=mode,
            cache=8 if mode == "hybrid" else 0,
            adv_warmup=4,
            extra_object_p=0.5 if mode == "hybrid" else 0.0,  # its fakes with one object too many
            disc_head="set" if mode == "hybrid" else "conv",
            adv_balance=mode == "hybrid",  # the LADD weight times |grad sCM| / |grad LADD|
        )
    )
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    # the LADD weight: rising from 0 in the hybrid (0.5 x step / 4, here times the gradient ratio),
    # 1 when LADD trains alone
    if mode == "hybrid":
        assert all(r["grad_ratio"] > 0 for r in log)
        assert [r["adv_w"] / r["grad_ratio"] for r in log] == pytest.approx([0.125, 0.25], rel=1e-3)
    else:
        assert [r.get("adv_w") for r in log] == {"scm": [None, None], "ladd": [1.0, 1.0]}[mode]
    assert ("scm" in log[0]) == (mode != "ladd") and ("d" in log[0]) == (mode != "scm")
    if mode != "ladd":  # the raw tangent's norm (before sCM's normalisation) and the log-variance
        assert all(r["tangent"] > 0 and np.isfinite(r["logvar"]) for r in log)
    assert "judge_1step" in log[-1] and (out / "transformer" / "config.json").exists()
    assert json.loads((out / "config.json").read_text())["mode"] == mode
    # its first evaluation is its best so far, kept beside the run
    assert log[-1]["best_step"] == 2 and (out / "best" / "transformer" / "config.json").exists()


def test_student_parameters_matching_freeze_keep_the_teachers_values(vae_dir, teacher, tmp_path):
    from safetensors.torch import load_file

    from sprint_desktop.distill.train_student import train as train_student

    cfg = tiny_student(teacher, vae_dir, tmp_path / "s", freeze=r"attn2\.to_v\.bias")
    out = train_student(cfg)
    before = load_file(teacher / "transformer" / "diffusion_pytorch_model.safetensors")
    after = load_file(out / "transformer" / "diffusion_pytorch_model.safetensors")
    frozen = [k for k in after if k.endswith("attn2.to_v.bias")]
    assert frozen and all(torch.equal(after[k], before[k]) for k in frozen)
    assert not torch.equal(after["proj_out.weight"], before["proj_out.weight"])
    for bad, words in (("no_such_param", "matches no parameter"), ("(", "not a regular expression")):
        with pytest.raises(SprintError, match=words):
            train_student(dataclasses.replace(cfg, out=str(tmp_path / bad), freeze=bad))


def test_student_cools_down_on_a_cosine_and_keeps_an_ema_of_its_weights(vae_dir, teacher, tmp_path):
    """A cosine to 0 at the last step; the EMA is what the run judges, keeps and saves, and it
    resumes from the checkpoint's EMA, not from the raw weights."""
    from safetensors.torch import load_file

    from sprint_desktop.distill.train_student import train as train_student

    cfg = tiny_student(teacher, vae_dir, tmp_path / "s", lr=1e-3, lr_schedule="cosine", ema=0.5)
    out = train_student(cfg)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([5e-4, 0.0])  # the rate after steps 1 and 2
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    saved = load_file(out / "transformer" / "diffusion_pytorch_model.safetensors")
    kept = load_file(out / "best" / "transformer" / "diffusion_pytorch_model.safetensors")
    key = "proj_out.weight"
    assert torch.equal(saved[key], state["ema"][key]) and torch.equal(kept[key], saved[key])
    assert not torch.equal(saved[key], state["student"][key])
    train_student(dataclasses.replace(cfg, iters=3, lr=0.0))  # resumed, one step at rate 0:
    again = load_file(out / "transformer" / "diffusion_pytorch_model.safetensors")
    # the EMA moves towards the unchanged raw weights by 1 - decay, the decay at its warm-up's 3 / 12
    assert torch.allclose(again[key], saved[key] * 0.25 + state["student"][key] * 0.75)


def test_update_ema_moves_each_weight_by_one_minus_the_decay():
    from sprint_desktop.distill.train_teacher import update_ema

    ema, model = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    want = [
        0.75 * e.detach() + 0.25 * m.detach()
        for e, m in zip(ema.parameters(), model.parameters(), strict=True)
    ]
    update_ema(ema, model, 0.75)
    assert all(torch.allclose(e, w) for e, w in zip(ema.parameters(), want, strict=True))


def test_student_goes_on_from_another_students_weights(vae_dir, teacher, tmp_path):
    """--init starts from a finished run's weights, not the teacher's; a wrong folder is one line."""
    from safetensors.torch import load_file

    from sprint_desktop.distill.train_student import train as train_student

    first = train_student(tiny_student(teacher, vae_dir, tmp_path / "a", lr=1e-3))
    init = first / "transformer"
    out = train_student(tiny_student(teacher, vae_dir, tmp_path / "b", init=str(init), lr=0.0))
    a = load_file(init / "diffusion_pytorch_model.safetensors")
    b = load_file(out / "transformer" / "diffusion_pytorch_model.safetensors")
    t = load_file(teacher / "transformer" / "diffusion_pytorch_model.safetensors")
    assert torch.equal(a["proj_out.weight"], b["proj_out.weight"])
    assert not torch.equal(t["proj_out.weight"], b["proj_out.weight"])
    with pytest.raises(SprintError, match="no transformer there"):
        train_student(tiny_student(teacher, vae_dir, tmp_path / "c", init=str(tmp_path / "nowhere")))


def test_student_that_collapses_after_a_good_evaluation_stops_and_keeps_its_checkpoint(
    vae_dir, teacher, tmp_path
):
    """A run whose judge falls to 0 after a positive best stops with one line, its checkpoint and
    final weights untouched (session 8's sCM student went blank while its loss kept falling). The
    tiny student's judge is 0; the earlier good evaluation is its ``best/best.json``."""
    from sprint_desktop.distill.student_guard import Best
    from sprint_desktop.distill.train_student import train as train_student

    (tmp_path / "best").mkdir()
    Best(step=750, score=0.36).save(tmp_path)
    cfg = tiny_student(teacher, vae_dir, tmp_path)
    with pytest.raises(SprintError, match=r"collapsed at step 2: .* 0.360 at step 750"):
        train_student(cfg)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["judge_1step"] == 0.0 and log[-1]["best_step"] == 750
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "transformer").exists()


def test_student_stopped_by_sigterm_checkpoints_and_resumes(vae_dir, teacher, tmp_path, capsys):
    """A background student run stopped before a session ends loses at most one step."""
    import os
    import signal
    import threading
    import time

    from sprint_desktop.distill.train_student import train as train_student

    cfg = tiny_student(
        teacher, vae_dir, tmp_path / "s", mode="hybrid", iters=200, eval_every=10**6, cache=8, adv_warmup=4
    )
    log = tmp_path / "s" / "log.jsonl"

    def stop_after_first_step() -> None:
        while not (log.exists() and log.read_text().strip()):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        threading.Thread(target=stop_after_first_step, daemon=True).start()
        train_student(cfg)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    stopped = torch.load(tmp_path / "s" / "checkpoint.pt", weights_only=True)["step"]
    assert stopped == steps[-1] < 200 and steps == list(range(1, stopped + 1))
    capsys.readouterr()
    train_student(dataclasses.replace(cfg, iters=stopped + 1))
    assert f"resumed from step {stopped}" in capsys.readouterr().out
    assert json.loads(log.read_text().splitlines()[-1])["step"] == stopped + 1
    with pytest.raises(SprintError, match="trained with another discriminator"):  # a clear line, no traceback
        train_student(dataclasses.replace(cfg, iters=stopped + 2, disc_head="set"))


def test_extra_object_latents_are_scaled_as_the_training_batches(vae_dir):
    from diffusers import AutoencoderDC

    from sprint_desktop.distill import data

    vae = AutoencoderDC.from_pretrained(vae_dir)
    rng = np.random.default_rng(0)
    latents, captions = data.extra_object_latents(vae, rng, 3)
    real, _ = data.TrainingLatents(vae, vae_dir, 0, 0).batch(np.random.default_rng(0), 3)
    assert latents.shape == real.shape and len(captions) == 3 and all(captions)
    assert 0.2 < latents.std().item() / real.std().item() < 5  # the same scale, not raw latents


def test_teacher_grid_draws_every_grid_prompt(vae_dir, teacher, tmp_path):
    from sprint_desktop.distill.evaluate import teacher_grid

    assert_one_tile_per_grid_prompt(
        teacher_grid(str(teacher), str(vae_dir), tmp_path / "g.png", steps=1, scale=1)
    )


def test_evaluate_teacher_gives_a_row_per_step_count(vae_dir, teacher):
    from sprint_desktop.distill.evaluate import evaluate_teacher

    rows = evaluate_teacher(str(teacher), str(vae_dir), [1, 2], 4)
    assert [r["steps"] for r in rows] == [1, 2] and all(0 <= r["all"] <= 1 for r in rows)
    assert all(np.isfinite(r["fd"]) and r["ms_per_image"] > 0 for r in rows)


def test_ema_decay_warms_up():
    from sprint_desktop.distill.train_teacher import ema_decay

    assert ema_decay(0, 0.999) == pytest.approx(0.1)
    assert ema_decay(90, 0.999) == pytest.approx(0.91)
    assert ema_decay(100_000, 0.999) == 0.999


def test_evaluation_engine_does_not_freeze_the_student():
    """Building the evaluation engine must leave the model being trained trainable."""
    from sprint_desktop.distill.components import (
        make_text_encoder,
        make_tokenizer,
        make_transformer,
        make_vae,
    )
    from sprint_desktop.distill.train_student import build_engine

    tok = make_tokenizer()
    student = make_transformer().train()
    build_engine(student, make_vae(), make_text_encoder(len(tok)), tok)
    assert student.training and all(p.requires_grad for p in student.parameters())
    assert next(student.parameters()).dtype == torch.float32


def test_package_makes_a_model_our_engine_and_stock_diffusers_load(vae_dir, teacher, tmp_path_factory):
    from diffusers import SanaSprintPipeline, SanaTransformer2DModel

    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.distill.package import package
    from sprint_desktop.engine.controlnet import SprintControlNetModel
    from sprint_desktop.engine.torch_backend import TorchEngine

    cn_dir = tmp_path_factory.mktemp("cn")
    SprintControlNetModel.from_transformer(
        SanaTransformer2DModel.from_pretrained(teacher / "transformer"), 4
    ).save_pretrained(cn_dir)
    out = package(
        str(vae_dir),
        str(teacher),
        str(teacher / "transformer"),
        str(tmp_path_factory.mktemp("m") / "sprint-shapes"),
        controlnet=str(cn_dir),
    )
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    assert size_mb < 50
    assert json.loads((out / "sprint_desktop.json").read_text())["complex_human_instruction"] is False
    engine = TorchEngine(out, device="cpu")
    assert engine.info.control_mode == "controlnet" and (
        engine.info.default_width,
        engine.info.default_height,
    ) == (64, 64)
    assert engine.generate(GenerateRequest("a red circle left of a blue square", steps=1)).image.shape == (
        64,
        64,
        3,
    )
    stock = SanaSprintPipeline.from_pretrained(out, local_files_only=True)
    assert stock.transformer.config.guidance_embeds


def test_transformer_shape_is_configurable_and_bounded():
    from sprint_desktop.distill.components import transformer_config

    tf = make_transformer(patch_size=2, num_layers=2, num_heads=4)
    assert tf.config.patch_size == 2 and len(tf.transformer_blocks) == 2
    assert tf.config.cross_attention_dim == 4 * 32
    out = tf(
        torch.randn(1, 32, 8, 8),
        encoder_hidden_states=torch.randn(1, 3, 128),
        guidance=torch.zeros(1),
        timestep=torch.full((1,), 0.5),
        return_dict=False,
    )[0]
    assert out.shape == (1, 32, 8, 8)
    with pytest.raises(ValueError, match="patch_size 3"):
        transformer_config(patch_size=3)


def test_lr_factor_warms_up_then_stays_or_decays():
    from sprint_desktop.distill.schedule import lr_factor

    constant = TeacherConfig(iters=1000, warmup=100)
    cosine = TeacherConfig(iters=1100, warmup=100, lr_schedule="cosine")
    assert lr_factor(0, constant) == pytest.approx(0.01) and lr_factor(49, constant) == pytest.approx(0.5)
    assert lr_factor(99, constant) == 1.0 and lr_factor(900, constant) == 1.0
    assert lr_factor(99, cosine) == pytest.approx(1.0)
    assert lr_factor(600, cosine) == pytest.approx(0.5) and lr_factor(1100, cosine) == pytest.approx(0.0)
    branch = TeacherConfig(iters=3000, warmup=100, lr_schedule="cosine", decay_start=2000)
    assert lr_factor(1999, branch) == 1.0 and lr_factor(2000, branch) == 1.0
    assert lr_factor(2500, branch) == pytest.approx(0.5) and lr_factor(3000, branch) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor(0, TeacherConfig(lr_schedule="linear"))


def test_teacher_stops_at_its_cpu_budget_and_the_sweep_reports_it(vae_dir, tmp_path):
    from sprint_desktop.distill import sweep

    cfg = tiny_teacher(
        vae_dir,
        tmp_path / "p2-small",
        iters=50,
        eval_every=1000,
        log_every=1000,
        patch_size=2,
        num_layers=2,
        cpu_budget_min=1e-6,  # spent by the first step
        threads=1,
    )
    out = train_teacher(cfg)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1]  # stopped at the budget, evaluated, saved
    assert {"cpu_min", "judge_all", "fd", "val_loss"} <= set(log[0])
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 1 and state["cpu_s"] > 0
    assert json.loads((out / "transformer" / "config.json").read_text())["patch_size"] == 2
    assert "| p2-small | 1 |" in sweep.table(tmp_path)
    sweep.plot(tmp_path, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_sweep_candidates_resolve_to_configs():
    from sprint_desktop.distill import sweep

    for name in sweep.CANDIDATES:
        cfg = sweep.config(name, "v", "r", budget=45, cache=8, eval_every=500)
        assert cfg.cpu_budget_min == 45 and cfg.threads == 1 and cfg.out.endswith(name)
    assert sweep.config("p2-lr1e-3-b32", "v", "r", 1, 0, 1).batch == 32
    with pytest.raises(ValueError, match="unknown candidate"):
        sweep.config("p9", "v", "r", 1, 0, 1)


def test_stop_request_is_set_by_sigterm():
    import os
    import signal

    from sprint_desktop.distill.train_teacher import StopRequest

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        stop = StopRequest()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.asked
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


def test_vae_decoder_fine_tune_keeps_the_encoder_and_its_scale(vae_dir, tmp_path):
    from diffusers import AutoencoderDC

    before = AutoencoderDC.from_pretrained(vae_dir)
    out = train_vae(tiny_vae(tmp_path / "dec", iters=2, eval_every=2, init=str(vae_dir), decoder_only=True))
    after = AutoencoderDC.from_pretrained(out)
    assert after.config.scaling_factor == before.config.scaling_factor
    for (name, a), b in zip(
        after.encoder.state_dict().items(), before.encoder.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            after.decoder.state_dict().values(), before.decoder.state_dict().values(), strict=True
        )
    )
    with pytest.raises(ValueError, match="decoder_only needs init"):
        train_vae(tiny_vae(tmp_path / "x", iters=1, decoder_only=True))


def test_a_deepened_transformer_computes_what_the_original_does():
    """Net2DeeperNet: the inserted blocks are the identity, so outputs are equal before training."""
    from diffusers import SanaTransformer2DModel

    from sprint_desktop.distill.grow import block_order, deeper

    torch.manual_seed(0)
    small = SanaTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=8,
        sample_size=4,
        patch_size=1,
        qk_norm="rms_norm_across_heads",
    ).eval()
    for p in small.parameters():  # no zero-initialised branch anywhere, so the check means something
        torch.nn.init.normal_(p, std=0.2)
    grown = deeper(small, 2).eval()
    assert grown.config.num_layers == 6 and [i for i, _ in block_order(4, 2)] == [0, 1, 1, 2, 3, 3]
    x, text = torch.randn(2, 4, 4, 4), torch.randn(2, 3, 8)
    args = dict(encoder_hidden_states=text, timestep=torch.tensor([0.3, 0.9]), return_dict=False)
    with torch.no_grad():
        want, got = small(x, **args)[0], grown(x, **args)[0]
    assert torch.allclose(want, got, atol=1e-5) and want.abs().mean() > 0.01
    with pytest.raises(ValueError, match="at least 1"):
        block_order(4, 0)


def test_a_deepened_student_trains_and_packages_deeper_than_its_teacher(vae_dir, teacher, tmp_path):
    from diffusers import SanaTransformer2DModel

    from sprint_desktop.distill.train_student import train as train_student

    out = train_student(tiny_student(teacher, vae_dir, tmp_path / "s", deepen=1))
    depth = SanaTransformer2DModel.load_config(teacher / "transformer")["num_layers"]
    assert SanaTransformer2DModel.load_config(out / "transformer")["num_layers"] == 2 * depth
    # it goes on from its own deeper weights; a student of another width is refused in one line
    train_student(tiny_student(teacher, vae_dir, tmp_path / "t", init=str(out / "transformer")))
    wide = SanaTransformer2DModel.from_pretrained(out / "transformer")
    SanaTransformer2DModel(**{**dict(wide.config), "attention_head_dim": 4}).save_pretrained(tmp_path / "w")
    with pytest.raises(SprintError, match="differs from the teacher .* in attention_head_dim"):
        train_student(tiny_student(teacher, vae_dir, tmp_path / "u", init=str(tmp_path / "w")))

"""The training scripts run end to end at tiny sizes, save their config, and resume."""

from __future__ import annotations

import json

import pytest
import torch

from sprint_desktop.distill.components import make_transformer
from sprint_desktop.distill.train_teacher import TeacherConfig, euler_sample
from sprint_desktop.distill.train_teacher import train as train_teacher
from sprint_desktop.distill.train_vae import VAEConfig, gradient_loss
from sprint_desktop.distill.train_vae import train as train_vae


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    cfg = VAEConfig(out=str(out), iters=2, batch=2, eval_every=1, eval_images=4, log_every=1)
    return train_vae(cfg)


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
    train_vae(VAEConfig(out=str(out), iters=3, batch=2, eval_every=1, eval_images=4, log_every=1))
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
    cfg = TeacherConfig(
        vae=str(vae_dir),
        out=str(tmp_path / "t"),
        iters=2,
        batch=4,
        eval_every=2,
        eval_images=4,
        eval_steps=2,
        log_every=1,
        warmup=1,
    )
    out = train_teacher(cfg)
    assert (out / "transformer" / "config.json").exists() and (out / "text_encoder" / "config.json").exists()
    assert (out / "tokenizer" / "tokenizer.json").exists()
    first = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert first[-1]["step"] == 2 and "judge_all" in first[-1]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    init = make_transformer(cfg.seed).state_dict()
    # the EMA warms up: after two steps it is near the trained weights, not the random init
    for name in ("proj_out.weight", "transformer_blocks.0.attn1.to_q.weight"):
        raw, ema = state["transformer"][name], state["ema_transformer"][name]
        assert (ema - raw).norm() < 0.5 * (init[name] - raw).norm()
    train_teacher(TeacherConfig(**{**cfg.__dict__, "iters": 3}))
    assert "resumed from step 2" in capsys.readouterr().out


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state; a run with another precision needs a fresh one."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_teacher_trains_from_a_latent_cache_in_bf16(vae_dir, tmp_path, fresh_accelerate_state):
    cfg = TeacherConfig(
        vae=str(vae_dir),
        out=str(tmp_path / "t"),
        iters=2,
        batch=4,
        eval_every=2,
        eval_images=2,
        eval_steps=1,
        log_every=1,
        warmup=1,
        cache=8,
        mixed_precision="bf16",
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


@pytest.mark.parametrize(
    "mode",
    ["hybrid", pytest.param("scm", marks=pytest.mark.slow), pytest.param("ladd", marks=pytest.mark.slow)],
)
def test_student_distillation_two_steps(vae_dir, tmp_path_factory, mode):
    from sprint_desktop.distill.train_student import StudentConfig
    from sprint_desktop.distill.train_student import train as train_student

    teacher = tmp_path_factory.getbasetemp() / "teacher-for-students"
    if not (teacher / "transformer").exists():
        train_teacher(
            TeacherConfig(
                vae=str(vae_dir),
                out=str(teacher),
                iters=1,
                batch=2,
                eval_every=100,
                eval_images=2,
                log_every=1,
                warmup=1,
            )
        )
    out = train_student(
        StudentConfig(
            teacher=str(teacher),
            vae=str(vae_dir),
            out=str(tmp_path_factory.mktemp(mode)),
            mode=mode,
            iters=2,
            batch=2,
            eval_every=2,
            eval_images=2,
            log_every=1,
            cache=8 if mode == "hybrid" else 0,
        )
    )
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert ("scm" in log[0]) == (mode != "ladd") and ("d" in log[0]) == (mode != "scm")
    assert "judge_1step" in log[-1] and (out / "transformer" / "config.json").exists()
    assert json.loads((out / "config.json").read_text())["mode"] == mode


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


def test_package_makes_a_model_our_engine_and_stock_diffusers_load(vae_dir, tmp_path_factory):
    from diffusers import SanaSprintPipeline

    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.distill.package import package
    from sprint_desktop.engine.controlnet import SprintControlNetModel
    from sprint_desktop.engine.torch_backend import TorchEngine

    teacher = tmp_path_factory.getbasetemp() / "teacher-for-students"
    if not (teacher / "transformer").exists():
        train_teacher(
            TeacherConfig(
                vae=str(vae_dir),
                out=str(teacher),
                iters=1,
                batch=2,
                eval_every=100,
                eval_images=2,
                log_every=1,
                warmup=1,
            )
        )
    from diffusers import SanaTransformer2DModel

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

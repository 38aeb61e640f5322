"""The teacher ships as a stock `SanaPipeline` folder: same network without the guidance branch,
sampled by diffusers alone exactly as our Euler sampler does, and read back for distillation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sprint_desktop.distill.components import make_text_encoder, make_tokenizer, make_transformer, make_vae
from sprint_desktop.distill.package import (
    package_teacher,
    with_guidance_embedding,
    without_guidance_embedding,
)
from sprint_desktop.distill.sampling import euler_sample


def _perturbed(seed: int):
    """A transformer whose guidance branch is not trivial (random init leaves it near zero)."""
    tf = make_transformer(seed, num_layers=2).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tf.time_embed.guidance_embedder.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return tf


def _call(tf, x, s, guidance=True):
    text = torch.randn(x.shape[0], 5, 128, generator=torch.Generator().manual_seed(1))
    kw = {"guidance": torch.zeros_like(s)} if guidance else {}
    return tf(x, encoder_hidden_states=text, timestep=s, return_dict=False, **kw)[0]


def test_folding_the_guidance_branch_keeps_the_network():
    tf = _perturbed(0)
    plain = without_guidance_embedding(tf)
    assert not plain.config.guidance_embeds and plain.config.timestep_scale == 1e-3
    x, s = torch.randn(2, 32, 8, 8), torch.tensor([0.2, 0.9])
    with torch.no_grad():
        want = _call(tf, x, s)
        got = _call(plain, x, s * 1000 * plain.config.timestep_scale, guidance=False)
        back = _call(with_guidance_embedding(plain), x, s)
    # the fold reassociates float32 sums: equal to a few ulps of the activations, not bit for bit
    torch.testing.assert_close(got, want, atol=5e-5, rtol=1e-5)
    torch.testing.assert_close(back, want, atol=5e-5, rtol=1e-5)
    assert not torch.allclose(_call(make_transformer(1, num_layers=2).eval(), x, s).detach(), want)


def test_stock_sana_pipeline_samples_the_packaged_teacher_like_our_sampler(tmp_path):
    from diffusers import SanaPipeline

    tok, tf, vae = make_tokenizer(), _perturbed(0), make_vae()
    te = make_text_encoder(len(tok)).eval()
    run = tmp_path / "run"
    tf.save_pretrained(run / "transformer")
    te.save_pretrained(run / "text_encoder")
    tok.save_pretrained(run / "tokenizer")
    vae.register_to_config(scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "vae")
    folder = package_teacher(str(tmp_path / "vae"), str(run), str(tmp_path / "teacher"))

    pipe = SanaPipeline.from_pretrained(folder, local_files_only=True, torch_dtype=torch.float32)
    steps, caption = 3, "a red circle"
    latents = torch.randn((1, 32, 8, 8), generator=torch.Generator().manual_seed(5))
    out = pipe(
        caption,
        num_inference_steps=steps,
        sigmas=list(np.linspace(1.0, 0.0, steps + 1)[:-1]),
        guidance_scale=4.5,
        latents=latents.clone(),
        height=64,
        width=64,
        complex_human_instruction=None,
        use_resolution_binning=False,
        max_sequence_length=16,
        output_type="latent",
    ).images
    # the same (fp16-stored) weights through our sampler, guidance branch restored at zero
    ours = euler_sample(
        with_guidance_embedding(pipe.transformer),
        tok,
        pipe.text_encoder,
        [caption],
        steps,
        4.5,
        0,
        noise=latents,
    )
    torch.testing.assert_close(out, ours, atol=1e-4, rtol=1e-4)
    x, s = torch.randn(1, 32, 8, 8), torch.tensor([0.7])
    with torch.no_grad():  # and the stored teacher is the trained one up to fp16 rounding
        got = _call(pipe.transformer, x, s * 1000 * 1e-3, guidance=False)
        torch.testing.assert_close(got, _call(tf, x, s), atol=2e-2, rtol=2e-2)


def test_students_read_a_packaged_teacher(tmp_path):
    from sprint_desktop.distill.train_student import StudentConfig, load_frozen

    tok = make_tokenizer()
    run = tmp_path / "run"
    _perturbed(0).save_pretrained(run / "transformer")
    make_text_encoder(len(tok)).save_pretrained(run / "text_encoder")
    tok.save_pretrained(run / "tokenizer")
    make_vae().save_pretrained(tmp_path / "vae")
    folder = package_teacher(str(tmp_path / "vae"), str(run), str(tmp_path / "teacher"))
    _, _, teacher, _ = load_frozen(StudentConfig(teacher=str(folder), vae=str(tmp_path / "vae")), "cpu")
    assert teacher.config.guidance_embeds and teacher.config.timestep_scale == 1.0
    assert next(teacher.parameters()).dtype == torch.float32


@pytest.mark.parametrize("missing", ["tokenizer", "text_encoder"])
def test_package_teacher_needs_a_complete_run(tmp_path, missing):
    run = tmp_path / "run"
    tok = make_tokenizer()
    make_transformer(0, num_layers=1).save_pretrained(run / "transformer")
    if missing != "text_encoder":
        make_text_encoder(len(tok)).save_pretrained(run / "text_encoder")
    if missing != "tokenizer":
        tok.save_pretrained(run / "tokenizer")
    make_vae().save_pretrained(tmp_path / "vae")
    with pytest.raises((OSError, ValueError)):
        package_teacher(str(tmp_path / "vae"), str(run), str(tmp_path / "out"))


def test_cli_packages_a_teacher_run(tmp_path, capsys):
    from diffusers import SanaPipeline

    from sprint_desktop.cli import main

    tok = make_tokenizer()
    run = tmp_path / "run"
    make_transformer(0, num_layers=1).save_pretrained(run / "transformer")
    make_text_encoder(len(tok)).save_pretrained(run / "text_encoder")
    tok.save_pretrained(run / "tokenizer")
    make_vae().save_pretrained(tmp_path / "vae")
    out = tmp_path / "teacher"
    args = [
        "distill",
        "package-teacher",
        "--vae",
        str(tmp_path / "vae"),
        "--teacher",
        str(run),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert f"teacher written to {out}" in capsys.readouterr().out
    pipe = SanaPipeline.from_pretrained(out, local_files_only=True)
    assert not pipe.transformer.config.guidance_embeds
    # which run and step it is (a run without config.json or checkpoint.pt: no config, no step)
    assert json.loads((out / "training.json").read_text()) == {"config": {}}
    from safetensors import safe_open

    with safe_open(out / "transformer" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}  # noqa: SIM118 (not a dict)

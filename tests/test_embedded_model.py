"""The embedded Sprint-Shapes model shipped in the repo: the default model, loadable offline by our
engine and by stock diffusers, safetensors only, under the size budget, with its card."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from sprint_desktop.cli import main
from sprint_desktop.core.paths import default_model_path, project_root

MODEL = project_root() / "models" / "sprint-shapes"


def test_the_embedded_model_is_the_default(monkeypatch):
    monkeypatch.delenv("SPRINT_MODEL", raising=False)
    assert default_model_path() == MODEL


def test_generate_without_a_model_argument_uses_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPRINT_MODEL", raising=False)
    out = tmp_path / "x.png"
    assert main(["generate", "a red circle left of a blue square", "-o", str(out), "--seed", "3"]) == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (64, 64, 3)
    # a white background with coloured shapes on it, not noise and not a blank
    assert (image > 235).all(axis=2).mean() > 0.3 and (image.max(axis=2) - image.min(axis=2) > 80).any()


def test_weights_are_safetensors_only_and_within_budget():
    files = [p for p in MODEL.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert {p.parent.name for p in files if p.suffix == ".safetensors"} >= {
        "text_encoder",
        "transformer",
        "vae",
        "controlnet",
    }
    assert sum(p.stat().st_size for p in files) < 50 * 2**20
    assert json.loads((MODEL / "sprint_desktop.json").read_text())["default_size"] == [64, 64]


def test_stock_diffusers_loads_it_offline(monkeypatch):
    from diffusers import SanaSprintPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = SanaSprintPipeline.from_pretrained(MODEL, local_files_only=True)
    assert pipe.transformer.config.guidance_embeds and pipe.vae.config.latent_channels == 32


def test_the_model_card_holds_the_table_and_its_commands():
    card = (MODEL / "MODEL_CARD.md").read_text()
    for needle in ("sprint evaluate", "scripts/train_sprint_shapes.sh", "| teacher |", "hybrid", "held_out"):
        assert needle in card


def test_a_long_prompt_is_reported_once_in_our_words_not_by_transformers(capfd):
    """transformers printed "Token indices sequence length is longer than ..." to the terminal."""
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.engine.torch_backend import TorchEngine

    engine = TorchEngine(MODEL, device="cpu")
    result = engine.generate(GenerateRequest(" ".join(["a red circle"] * 7), steps=1))
    engine.close()
    assert any("longer than 16 tokens" in w for w in result.warnings)
    assert "sequence length" not in capfd.readouterr().err


def test_our_image_equals_stock_diffusers_on_the_same_seed():
    """The faint coloured dots in the corners come from the model (its DC-AE decoder puts them on a
    pure white round trip too), not from our pipeline: stock SanaSprintPipeline gives the same pixels."""
    import torch
    from diffusers import SanaSprintPipeline

    from sprint_desktop.core.noise import draw_noise
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.engine.torch_backend import TorchEngine

    engine = TorchEngine(MODEL, device="cpu")
    prompt = "a red circle left of a blue square"
    ours = engine.generate(GenerateRequest(prompt, steps=1, seed=4)).image
    engine.close()
    pipe = SanaSprintPipeline.from_pretrained(MODEL, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    z0 = torch.from_numpy(np.ascontiguousarray(draw_noise(4, (32, 8, 8), 1)[0][None])).float()
    stock = pipe(
        prompt=prompt,
        num_inference_steps=1,
        intermediate_timesteps=None,
        guidance_scale=4.5,
        height=64,
        width=64,
        latents=z0,
        use_resolution_binning=False,
        max_sequence_length=16,
        complex_human_instruction=None,
        output_type="np",
    ).images[0]
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1
    with torch.no_grad():  # the decoder alone: white in, coloured corners out
        white = pipe.vae.decode(pipe.vae.encode(torch.ones(1, 3, 64, 64)).latent).sample[0]
    corners = white[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # (3, 4): RGB of the four corner pixels
    assert (corners.max(0).values - corners.min(0).values).max() > 0.1  # not grey: coloured

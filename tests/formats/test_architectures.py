"""The configs of the architectures we build with random weights agree with themselves (the
caption width is the text encoder's, the latent channels match the VAE's) and with the config
bounds, without building anything."""

from __future__ import annotations

import json

import pytest

from sprint_desktop.formats.architectures import (
    PUBLISHED_TRANSFORMERS,
    ArchitectureConfigs,
    published_configs,
    reduced_configs,
    tiny_configs,
)
from sprint_desktop.formats.config_bounds import check_model_configs

ARCHITECTURES = {
    "tiny": tiny_configs(),
    "reduced": reduced_configs(),
    **{arch: published_configs(arch) for arch in PUBLISHED_TRANSFORMERS},
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_the_components_fit_together(name):
    c: ArchitectureConfigs = ARCHITECTURES[name]
    t = c.transformer
    assert t["caption_channels"] == c.text_encoder["hidden_size"]
    assert t["in_channels"] == t["out_channels"] == c.vae["latent_channels"]
    assert t["cross_attention_dim"] == t["num_cross_attention_heads"] * t["cross_attention_head_dim"]
    assert len(c.vae["encoder_block_out_channels"]) == len(c.vae["encoder_block_types"])


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_the_config_bounds_accept_them(name, tmp_path):
    c = ARCHITECTURES[name]
    vocab = {"text_encoder": {"vocab_size": 256000}} if name.startswith("sana") else {}
    for component, config in (
        ("transformer", c.transformer),
        ("vae", c.vae),
        ("text_encoder", c.text_encoder),
    ):
        (tmp_path / component).mkdir()
        body = {**config, **vocab.get(component, {})}
        (tmp_path / component / "config.json").write_text(json.dumps(body))
    total = check_model_configs(tmp_path, lambda p: json.loads(p.read_text()))
    assert (total > 1e9) == name.startswith("sana")


def test_a_published_shape_needs_a_published_name():
    with pytest.raises(ValueError, match="arch must be one of sana-sprint-0.6b, sana-sprint-1.6b"):
        published_configs("sana-sprint-9b")
    assert published_configs("sana-sprint-1.6b", text_encoder_layers=2).text_encoder["num_hidden_layers"] == 2

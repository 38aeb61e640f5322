"""Issue #13 item 3: a model folder cannot make the app allocate without limit. Every config value
is checked against bounds and the parameter count is estimated before anything is built; the
refusal names the file and the field. (Only `inspect_model_folder` runs on the hostile folders:
before the fix, building them would have exhausted the machine.)"""

from __future__ import annotations

import json
import shutil

import pytest

from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.engine.torch_backend import TorchEngine
from sprint_desktop.formats.config_bounds import MAX_PARAMETERS, check_model_configs
from sprint_desktop.formats.model_folder import inspect_model_folder, read_json_object


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def edit(path, **values):
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(values)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("file", "values", "field"),
    [
        ("sprint_desktop.json", {"default_size": [65536, 65536]}, "default_size width"),
        ("sprint_desktop.json", {"default_size": [64]}, "default_size"),
        ("sprint_desktop.json", {"max_sequence_length": -5}, "max_sequence_length"),
        ("sprint_desktop.json", {"max_sequence_length": 10**9}, "max_sequence_length"),
        ("sprint_desktop.json", {"complex_human_instruction": "yes"}, "complex_human_instruction"),
        ("transformer/config.json", {"num_layers": 100000}, "num_layers"),
        ("transformer/config.json", {"attention_head_dim": 10**7}, "attention_head_dim"),
        ("transformer/config.json", {"sample_size": -1}, "sample_size"),
        ("transformer/config.json", {"mlp_ratio": 1e9}, "mlp_ratio"),
        ("transformer/config.json", {"patch_size": True}, "patch_size"),
        ("text_encoder/config.json", {"hidden_size": 10**6}, "hidden_size"),
        ("text_encoder/config.json", {"vocab_size": 10**10}, "vocab_size"),
        (
            "vae/config.json",
            {"decoder_block_out_channels": [32, 64, 10**6, 64]},
            "decoder_block_out_channels[2]",
        ),
        ("vae/config.json", {"encoder_layers_per_block": [1] * 100}, "encoder_layers_per_block"),
        ("vae/config.json", {"scaling_factor": float("inf")}, "scaling_factor"),
        ("vae/config.json", {"scaling_factor": None}, "scaling_factor"),
        ("transformer/config.json", {"mlp_ratio": None}, "mlp_ratio"),
        ("sprint_desktop.json", {"default_steps": None}, "default_steps"),
    ],
)
def test_an_out_of_bounds_config_value_is_refused_naming_file_and_field(model_copy, file, values, field):
    edit(model_copy / file, **values)
    with pytest.raises(ModelLoadError) as info:
        inspect_model_folder(model_copy)
    message = str(info.value)
    assert str(model_copy / file) in message and field in message
    assert "\n" not in message


def test_a_null_size_in_a_component_config_means_unset(model_copy):
    """transformers writes null for sizes it derives (``sliding_window``, ``head_dim``): the
    defaults apply; a null ratio or scaling factor is refused above, a null in our own settings too."""
    before = check_model_configs(model_copy, read_json_object)
    edit(model_copy / "text_encoder/config.json", sliding_window=None)
    edit(model_copy / "transformer/config.json", num_layers=None)  # diffusers' default: 20 layers
    assert check_model_configs(model_copy, read_json_object) > before
    inspect_model_folder(model_copy)


def test_values_each_in_bounds_but_a_huge_model_together_are_refused_by_the_estimate(model_copy):
    edit(
        model_copy / "transformer/config.json",
        num_layers=256,
        num_attention_heads=512,
        attention_head_dim=1024,
    )
    with pytest.raises(ModelLoadError, match="billion parameters"):
        inspect_model_folder(model_copy)


def test_the_estimate_matches_the_published_sizes_and_passes_real_models(model_copy):
    from pathlib import Path

    from sprint_desktop.formats.architectures import GEMMA2_2B, PUBLISHED_TRANSFORMERS

    root = model_copy
    edit(
        root / "transformer/config.json", **PUBLISHED_TRANSFORMERS["sana-sprint-1.6b"], caption_channels=2304
    )
    edit(root / "text_encoder/config.json", **GEMMA2_2B)
    total = check_model_configs(root, read_json_object)
    assert 4.0e9 < total < 5.0e9 < MAX_PARAMETERS  # 1.6B + 2.6B + the tiny DC-AE
    embedded = Path(__file__).resolve().parents[2] / "models" / "sprint-shapes"
    assert check_model_configs(embedded, read_json_object) < 50e6


def test_a_negative_max_sequence_length_is_a_load_error_not_a_traceback(model_copy):
    edit(model_copy / "sprint_desktop.json", max_sequence_length=-5)
    with pytest.raises(ModelLoadError, match="max_sequence_length must be a whole number from 1"):
        TorchEngine(model_copy, device="cpu").load()


def test_a_shard_index_cannot_point_outside_its_folder(model_copy):
    folder = model_copy / "transformer"
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../../../etc/passwd"}})
    )
    with pytest.raises(ModelLoadError, match="outside its folder"):
        inspect_model_folder(model_copy)


def test_a_deeply_nested_config_is_a_load_error(model_copy):
    (model_copy / "transformer/config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelLoadError, match="nested too deeply"):
        inspect_model_folder(model_copy)

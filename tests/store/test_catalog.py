"""The catalog and the state of models on disk (installed, partial, corrupt, missing)."""

from __future__ import annotations

import shutil

import pytest

from sprint_desktop.core.errors import SprintError
from sprint_desktop.store.catalog import find_entry, load_catalog, remove, state_of


def test_catalog_lists_the_embedded_and_published_models():
    entries = {e.name: e for e in load_catalog()}
    assert {"sprint-shapes", "sana-sprint-0.6b", "sana-sprint-1.6b"} <= set(entries)
    assert entries["sana-sprint-1.6b"].repo_id == "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers"
    assert entries["sana-sprint-0.6b"].download_gb == 7.7 and entries["sprint-shapes"].kind == "embedded"
    with pytest.raises(SprintError, match="unknown model 'nope'"):
        find_entry("nope")


def test_catalog_rejects_bad_names_and_repo_ids(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text(
        '[[model]]\nname = "../evil"\ntitle = "x"\nkind = "hub"\nrepo_id = "a/b"\nresolution = 1\n'
        'download_gb = 1\nmin_vram_gb = 1\nlicense = "x"\nlicense_url = "x"\ncontrolnet = false\n'
    )
    with pytest.raises(SprintError, match="invalid model name"):
        load_catalog(bad)
    bad.write_text(bad.read_text().replace('"../evil"', '"ok"').replace('"a/b"', '"a/../b/c"'))
    with pytest.raises(SprintError, match="invalid repo id"):
        load_catalog(bad)


def test_states_on_disk(tiny_model_dir, tmp_path):
    entry = find_entry("sana-sprint-0.6b")
    assert state_of(entry, tmp_path).state == "missing"
    folder = tmp_path / entry.name
    shutil.copytree(tiny_model_dir, folder)
    s = state_of(entry, tmp_path)
    assert s.state == "installed" and s.size_bytes > 0
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert state_of(entry, tmp_path).state == "corrupt"
    shutil.rmtree(folder / "vae")
    s = state_of(entry, tmp_path)
    assert s.state == "partial" and "vae" in s.problem
    assert remove(entry, tmp_path) == folder and not folder.exists()


def test_the_embedded_model_cannot_be_removed():
    with pytest.raises(SprintError, match="cannot be removed"):
        remove(find_entry("sprint-shapes"))

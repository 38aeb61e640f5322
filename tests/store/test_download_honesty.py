"""Issue #13 item 6: downloads and verification say what is really on disk (a hub stand-in on
127.0.0.1, the real huggingface_hub client)."""

from __future__ import annotations

import json

import pytest

from sprint_desktop.core.errors import SprintError
from sprint_desktop.store import catalog
from sprint_desktop.store.catalog import state_of
from sprint_desktop.store.download import download

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


pytestmark = pytest.mark.usefixtures("hub_online")


def test_a_file_in_the_repo_info_but_not_in_the_tree_is_a_clear_error(entry, hub, tmp_path):
    hub.info_only["vae/extra.safetensors"] = b"\0" * 100
    with pytest.raises(
        SprintError, match=r"1 of the \d+ files the hub listed did not arrive \(vae/extra.safetensors\)"
    ):
        download(entry, root=tmp_path, endpoint=hub.url)
    state = state_of(entry, tmp_path)
    assert state.state == "partial" and "did not finish" in state.problem


def test_a_stall_in_the_middle_of_a_weight_file_gives_up_after_one_resume(entry, hub, tmp_path):
    """The server sends 4 KB of the weights and then nothing for 6 s; with --timeout 1 the client
    gives up after the first attempt and one resume (before: six attempts of 10 s each)."""
    hub.stall_after[WEIGHTS] = (4096, 6.0)
    with pytest.raises(SprintError, match="run it again to resume|stopped"):
        download(entry, root=tmp_path, endpoint=hub.url, timeout=1.0)
    gets = [r for m, p, r in hub.requests if m == "GET" and p.endswith(WEIGHTS)]
    assert len(gets) == 2
    assert state_of(entry, tmp_path).state == "partial"


def test_verify_rereads_the_bytes_against_the_recorded_checksums(entry, hub, tmp_path):
    folder = download(entry, root=tmp_path, endpoint=hub.url)
    record = json.loads((folder / ".sprint-download.json").read_text())
    assert record["complete"] is True and record["files"][WEIGHTS]["sha256"]
    assert "checked against the sha256" in catalog.verify_model(entry, tmp_path)
    path = folder / WEIGHTS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the tensor data: same size, valid header
    path.write_bytes(bytes(data))
    assert state_of(entry, tmp_path).state == "installed"  # the cheap check cannot see it...
    with pytest.raises(SprintError, match=r"1 file\(s\) differ from what was downloaded \(transformer/"):
        catalog.verify_model(entry, tmp_path)  # ...the verification does
    assert path.exists()  # the user's file is reported, not deleted


def test_a_download_that_stopped_is_not_reported_installed(entry, hub, tmp_path):
    """The transfer of the tokenizer's config stalls; everything the structural check looks at
    arrived (weights, configs, tokenizer.json). The store must still say partial, from the
    download record, until a download finishes."""
    hub.stall_after["tokenizer/tokenizer_config.json"] = (10, 4.0)
    with pytest.raises(SprintError):
        download(entry, root=tmp_path, endpoint=hub.url, timeout=1.0)
    state = state_of(entry, tmp_path)
    assert state.state == "partial" and "did not finish" in state.problem
    with pytest.raises(SprintError, match="partial"):
        catalog.verify_model(entry, tmp_path)
    hub.stall_after.clear()
    download(entry, root=tmp_path, endpoint=hub.url)
    assert state_of(entry, tmp_path).state == "installed"


def test_a_folder_without_a_record_says_its_bytes_were_not_compared(entry, tiny_model_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "tiny")
    assert "no checksums were recorded" in catalog.verify_model(entry, tmp_path)

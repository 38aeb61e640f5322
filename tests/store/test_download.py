"""Downloads through a real huggingface_hub client from a hub stand-in on 127.0.0.1."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sprint_desktop.core.errors import SprintError
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine.torch_backend import TorchEngine
from sprint_desktop.store.catalog import state_of
from sprint_desktop.store.download import download

from .fake_hub import use_hub_catalog

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


pytestmark = pytest.mark.usefixtures("hub_online")


def test_full_download_with_progress_then_offline_use(entry, hub, tmp_path, monkeypatch):
    events = []
    folder = download(entry, root=tmp_path, endpoint=hub.url, progress=lambda d, t: events.append((d, t)))
    assert state_of(entry, tmp_path).state == "installed"
    assert events and events[-1][0] == events[-1][1] > 100_000
    hub.server.shutdown()  # the hub is gone: loading must not need it
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    r = TorchEngine(folder, device="cpu").generate(GenerateRequest("a red circle", steps=1, seed=1))
    assert r.image.shape == (32, 32, 3)


def _bytes_on_disk(folder) -> int:
    """Every byte the download has written: finished files and partial ones (in .cache)."""
    return sum(
        p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith((".lock", ".metadata", ".json", "CACHEDIR.TAG", ".gitignore"))
    )


def test_progress_counts_each_byte_once_and_a_resume_starts_from_the_kept_files(
    entry, hub, tmp_path, monkeypatch
):
    """huggingface_hub 2.x passes each chunk through two byte bars (received, written): their sum
    had the bar full with half the weights in. Each report here is checked against the bytes
    written so far (slack: a write buffer and a chunk in flight per worker)."""
    from huggingface_hub import constants

    from sprint_desktop.store.catalog import model_folder

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    hub.bytes_per_second = 200_000
    folder = model_folder(entry, tmp_path)
    ahead = []

    def check(done: int, total: int) -> None:
        ahead.append(done - _bytes_on_disk(folder))

    download(entry, root=tmp_path, endpoint=hub.url, progress=check)
    assert len(ahead) > 100 and max(ahead) < 2 * (8192 + 1024) + 8192  # +8192: the small files' json
    vae = "vae/diffusion_pytorch_model.safetensors"
    missing = (folder / WEIGHTS).stat().st_size + (folder / vae).stat().st_size
    (folder / WEIGHTS).unlink()
    (folder / vae).unlink()
    events = []
    download(entry, root=tmp_path, endpoint=hub.url, progress=lambda d, t: events.append((d, t)))
    total = events[-1][1]
    assert events[-1][0] == total and events[0][0] >= total - missing  # the kept files count as done


def test_interrupted_download_resumes(entry, hub, tmp_path, monkeypatch):
    """The connection drops after 5,000 bytes; the download continues from what it has (a Range
    request), it does not start over. Small chunks, so the part already received is on disk."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    hub.cut_after[WEIGHTS] = 5_000
    try:
        download(entry, root=tmp_path, endpoint=hub.url)
    except SprintError as exc:  # the client may also retry by itself within the same call
        assert "run it again to resume" in str(exc)
        download(entry, root=tmp_path, endpoint=hub.url)
    assert state_of(entry, tmp_path).state == "installed"
    ranges = [r for m, p, r in hub.requests if p.endswith(WEIGHTS) and m == "GET" and r]
    assert any(int(r.split("=")[1].split("-")[0]) >= 4_096 for r in ranges)  # continued, not restarted


def test_corrupted_file_is_caught_by_the_checksum(entry, hub, tmp_path):
    hub.corrupt.add(WEIGHTS)
    with pytest.raises(SprintError, match="failed their checksum"):
        download(entry, root=tmp_path, endpoint=hub.url)
    assert not (tmp_path / "tiny" / WEIGHTS).exists()
    assert state_of(entry, tmp_path).state in ("partial", "corrupt")
    hub.corrupt.clear()
    download(entry, root=tmp_path, endpoint=hub.url)
    assert state_of(entry, tmp_path).state == "installed"


def test_gated_model_needs_a_token(entry, hub, tmp_path):
    hub.gated = True
    with pytest.raises(SprintError, match="gated: accept its licence"):
        download(entry, root=tmp_path, endpoint=hub.url)


def test_stalled_server_times_out_with_a_clear_error(entry, hub, tmp_path):
    hub.stall_seconds = 3.0
    with pytest.raises(SprintError, match="stopped|could not be reached"):
        download(entry, root=tmp_path, endpoint=hub.url, timeout=0.5)


def test_not_enough_disk_space_is_refused_before_downloading(entry, hub, tmp_path):
    with pytest.raises(SprintError, match="not enough disk space"):
        download(entry, root=tmp_path, endpoint=hub.url, free_bytes=lambda path: 1000)
    assert not any(p.endswith(WEIGHTS) for _, p, _ in hub.requests)


def test_no_network_is_explained_in_plain_words(entry, tmp_path):
    """It said "ConnectError: [Errno ...] ... run it again to resume" with nothing downloaded."""
    with pytest.raises(SprintError, match="no internet connection") as caught:
        download(entry, root=tmp_path, endpoint="http://127.0.0.1:9", timeout=1.0)
    assert "resume" not in str(caught.value) and "Errno" not in str(caught.value)


def test_offline_mode_is_explained(entry, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SprintError, match="offline mode is on"):
        download(entry, root=tmp_path, endpoint="http://127.0.0.1:9")


def test_embedded_model_is_not_downloaded(tmp_path):
    from sprint_desktop.store.catalog import find_entry

    with pytest.raises(SprintError, match="ships with the app"):
        download(find_entry("sprint-shapes"), root=tmp_path)


def test_downloaded_pixels_match_the_source(entry, hub, tmp_path, tiny_engine):
    folder = download(entry, root=tmp_path, endpoint=hub.url)
    req = GenerateRequest("two blue squares", steps=2, seed=5)
    np.testing.assert_array_equal(
        TorchEngine(folder, device="cpu").generate(req).image, tiny_engine.generate(req).image
    )
    assert os.path.isdir(folder)


def test_cli_download_shows_progress(hub, tmp_path, monkeypatch, capsys):
    from sprint_desktop.cli import main

    use_hub_catalog(monkeypatch, tmp_path)
    assert main(["download", "tiny", "--endpoint", hub.url]) == 0
    out = capsys.readouterr()
    assert "MB/s" in out.err and "ready for offline use" in out.out
    assert main(["models", "--verify", "tiny"]) == 0


def test_a_model_in_the_hugging_face_cache_is_reused(entry, hub, tmp_path, monkeypatch):
    from huggingface_hub import constants, snapshot_download

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    snapshot_download("org/tiny", endpoint=hub.url, cache_dir=str(tmp_path / "hf-cache"))
    state = state_of(entry, tmp_path / "store")
    assert state.state == "installed" and state.problem == "in the Hugging Face cache"
    assert str(state.folder).startswith(str(tmp_path / "hf-cache"))


def test_the_store_folder_is_configurable(monkeypatch, tmp_path):
    from sprint_desktop.store import catalog

    monkeypatch.setenv("SPRINT_MODEL_STORE", str(tmp_path / "elsewhere"))
    assert catalog.store_root() == tmp_path / "elsewhere"

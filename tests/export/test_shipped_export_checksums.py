"""Issue #13 item 8: a shipped ONNX export whose bytes changed at the same size is not used; its
sha256s are checked whenever this machine has not verified the files as they are now."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from sprint_desktop.export import cache
from sprint_desktop.export.cache import shipped_export

pytest.importorskip("onnxruntime")


@pytest.fixture
def model_copy(shipped_model_dir, tmp_path):
    model = tmp_path / shipped_model_dir.name
    shutil.copytree(shipped_model_dir, model)  # copy2: the fast fingerprint still matches
    return model


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tampered_export_file_of_the_same_size_is_refused(model_copy, tmp_path):
    target = model_copy / "onnx" / "transformer.onnx"
    size = target.stat().st_size
    flip_a_byte(target)
    assert target.stat().st_size == size
    assert shipped_export(model_copy, stamps=tmp_path / "stamps") is None


def test_a_verified_export_is_fast_next_time_and_checked_again_after_a_change(
    model_copy, tmp_path, monkeypatch
):
    stamps = tmp_path / "stamps"
    assert shipped_export(model_copy, stamps=stamps) == model_copy / "onnx"  # hashed once
    assert len(list(stamps.glob("*.json"))) == 1

    def no_hashing(path):
        raise AssertionError(f"hashed {path} again")

    monkeypatch.setattr(cache, "file_sha256", no_hashing)
    assert shipped_export(model_copy, stamps=stamps) == model_copy / "onnx"  # the stamp is trusted
    monkeypatch.undo()
    target = model_copy / "onnx" / "vae_decoder.onnx"
    flip_a_byte(target)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # a write moves the time
    assert shipped_export(model_copy, stamps=stamps) is None


def test_an_app_without_torch_refuses_a_tampered_export_clearly(model_copy, monkeypatch, tmp_path):
    from sprint_desktop.core.errors import SprintError
    from sprint_desktop.factory import create_engine

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    flip_a_byte(model_copy / "onnx" / "text_encoder.onnx")
    monkeypatch.setitem(sys.modules, "sprint_desktop.export.onnx_export", None)  # as without PyTorch
    with pytest.raises(SprintError, match="own checksums"):
        create_engine(str(model_copy), backend="onnx", device="cpu")

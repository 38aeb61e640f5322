"""An ONNX export shipped inside the model folder (``<model>/onnx/``): found first, checked like a
cached one, and enough to run the model with no PyTorch in the process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from sprint_desktop.export.cache import (
    find_export,
    model_content_fingerprint,
    model_fingerprint,
    read_manifest,
    shipped_export,
    shipped_export_check,
)

pytest.importorskip("onnxruntime")


@pytest.fixture
def model_copy(shipped_model_dir, tmp_path):
    model = tmp_path / shipped_model_dir.name
    shutil.copytree(shipped_model_dir, model)
    return model


@pytest.fixture
def fresh_copy(shipped_model_dir, tmp_path):
    """A copy that does not keep modification times (``cp -r``, an unzip, an installer)."""
    model = tmp_path / "fresh" / shipped_model_dir.name
    shutil.copytree(shipped_model_dir, model, copy_function=shutil.copy)
    for weights in model.rglob("*.safetensors"):  # surely other times than the original's
        st = weights.stat()
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
    assert model_fingerprint(model) != read_manifest(model / "onnx")["fingerprint"]
    return model


def _weights(model):
    return next((model / "transformer").glob("*.safetensors"))


def test_shipped_export_is_found_before_the_cache(shipped_model_dir, tiny_model_dir, tmp_path):
    shipped = shipped_model_dir / "onnx"
    assert shipped_export(shipped_model_dir) == shipped
    assert find_export(shipped_model_dir, root=tmp_path / "no-cache") == shipped
    cache = tmp_path / "cache"  # a valid cached export of the same model does not win over it
    shutil.copytree(shipped, cache / f"{shipped_model_dir.name}-fp32-0123")
    assert find_export(shipped_model_dir, root=cache) == shipped
    assert shipped_export(tiny_model_dir) is None  # a model without one


def test_the_shipped_export_is_not_part_of_the_model_fingerprint(shipped_model_dir, tiny_model_dir):
    assert model_fingerprint(shipped_model_dir) == model_fingerprint(tiny_model_dir)
    assert read_manifest(shipped_model_dir / "onnx")["fingerprint"] == model_fingerprint(shipped_model_dir)


def test_the_manifest_records_the_models_content(shipped_model_dir, tiny_model_dir):
    manifest = read_manifest(shipped_model_dir / "onnx")
    assert manifest["content_fingerprint"] == model_content_fingerprint(tiny_model_dir)
    assert shipped_export_check(shipped_model_dir) == "fingerprint"  # no hashing when mtimes match


def test_a_copy_with_new_modification_times_is_accepted_by_content(fresh_copy, tmp_path):
    assert shipped_export_check(fresh_copy) == "content"
    assert shipped_export(fresh_copy) == fresh_copy / "onnx"
    assert find_export(fresh_copy, root=tmp_path / "no-cache") == fresh_copy / "onnx"


def test_changed_weights_make_the_shipped_export_stale(fresh_copy, tmp_path):
    weights = _weights(fresh_copy)
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of the last weight: same size, and the same modification time below
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert shipped_export_check(fresh_copy) is None
    assert shipped_export(fresh_copy) is None
    assert find_export(fresh_copy, root=tmp_path / "no-cache") is None


def test_an_app_without_torch_refuses_changed_weights_clearly(fresh_copy, monkeypatch):
    from sprint_desktop.core.errors import SprintError
    from sprint_desktop.factory import create_engine

    weights = _weights(fresh_copy)
    data = weights.read_bytes()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    monkeypatch.setitem(sys.modules, "sprint_desktop.export.onnx_export", None)  # as without PyTorch
    with pytest.raises(SprintError, match="onnx does not match the model's files"):
        create_engine(str(fresh_copy), backend="onnx", device="cpu")


def test_new_modification_times_alone_do_not_make_it_stale(model_copy, tmp_path):
    weights = _weights(model_copy)
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert shipped_export_check(model_copy) == "content"


def test_an_export_from_before_the_content_fingerprint_gets_the_fast_check_only(
    fresh_copy, model_copy, tmp_path
):
    for model in (fresh_copy, model_copy):
        path = model / "onnx" / "manifest.json"
        manifest = json.loads(path.read_text())
        del manifest["content_fingerprint"]
        path.write_text(json.dumps(manifest))
    assert shipped_export_check(model_copy) == "fingerprint"  # times kept: accepted as before
    assert shipped_export_check(fresh_copy) is None  # times lost: refused as before, no crash
    assert find_export(fresh_copy, root=tmp_path / "no-cache") is None


def test_a_damaged_or_other_precision_export_is_not_used(model_copy, tmp_path):
    assert shipped_export(model_copy, precision="fp16") is None
    graph = model_copy / "onnx" / "vae_decoder.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])  # truncated
    assert shipped_export(model_copy) is None and find_export(model_copy, root=tmp_path / "x") is None
    (model_copy / "onnx" / "manifest.json").write_text("{not json")
    assert shipped_export(model_copy) is None


@pytest.mark.parametrize("copy", ["as exported", "copied without its modification times"])
def test_a_process_without_torch_runs_the_model_on_its_shipped_export(copy, request, tmp_path):
    shipped_model_dir = request.getfixturevalue(
        "shipped_model_dir" if copy == "as exported" else "fresh_copy"
    )
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # `import torch` raises ImportError, as in the packaged app
        from sprint_desktop.core.request import GenerateRequest
        from sprint_desktop.factory import create_engine
        engine = create_engine({str(shipped_model_dir)!r}, backend="onnx", device="cpu")
        info = engine.load()
        result = engine.generate(GenerateRequest("a red circle", steps=2, seed=3))
        heavy = [m for m in ("diffusers", "transformers") if m in sys.modules]
        print(json.dumps({{"export": str(engine.export_dir), "backend": info.backend,
                           "shape": list(result.image.shape), "std": float(result.image.std()), "heavy": heavy}}))
        """
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # an empty user cache
    proc = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["export"] == str(shipped_model_dir / "onnx") and out["backend"] == "onnx"
    assert out["shape"] == [32, 32, 3] and out["std"] > 0 and out["heavy"] == []
    # nothing exported into the user cache (ONNX Runtime's optimized graphs are cached, not exports)
    written = (tmp_path / "cache").rglob("*.onnx") if (tmp_path / "cache").exists() else []
    assert [p for p in written if "ort-optimized" not in p.parts] == []


def test_display_settings_do_not_make_the_export_stale_but_text_settings_do(model_copy, tmp_path):
    """The export bakes in only the text encoder's settings; name, size, steps and example prompts
    are read from the folder at load, so editing them keeps the export (and "auto" on ONNX)."""
    from sprint_desktop.engine.onnx_backend import OnnxEngine

    settings = model_copy / "sprint_desktop.json"
    settings.write_text(
        json.dumps(
            {"name": "Renamed", "default_steps": 1, "default_size": [64, 32], "example_prompts": ["x"]}
        )
    )
    assert shipped_export(model_copy) == model_copy / "onnx"
    info = OnnxEngine(model_copy / "onnx", device="cpu").load()
    assert (info.name, info.default_steps, info.default_width, info.default_height) == ("Renamed", 1, 64, 32)
    settings.write_text(json.dumps({"max_sequence_length": 7}))
    assert shipped_export(model_copy) is None

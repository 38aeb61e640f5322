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

from sprint_desktop.export.cache import find_export, model_fingerprint, read_manifest, shipped_export

pytest.importorskip("onnxruntime")


@pytest.fixture
def model_copy(shipped_model_dir, tmp_path):
    model = tmp_path / shipped_model_dir.name
    shutil.copytree(shipped_model_dir, model)
    return model


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


def test_changed_weights_make_the_shipped_export_stale(model_copy, tmp_path):
    weights = next((model_copy / "transformer").glob("*.safetensors"))
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert shipped_export(model_copy) is None
    assert find_export(model_copy, root=tmp_path / "no-cache") is None


def test_a_damaged_or_other_precision_export_is_not_used(model_copy, tmp_path):
    assert shipped_export(model_copy, precision="fp16") is None
    graph = model_copy / "onnx" / "vae_decoder.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])  # truncated
    assert shipped_export(model_copy) is None and find_export(model_copy, root=tmp_path / "x") is None
    (model_copy / "onnx" / "manifest.json").write_text("{not json")
    assert shipped_export(model_copy) is None


def test_a_process_without_torch_runs_the_model_on_its_shipped_export(shipped_model_dir, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # `import torch` raises ImportError, as in the packaged app
        from sprint_desktop.core.request import GenerateRequest
        from sprint_desktop.engine import create_engine
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
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.onnx"))

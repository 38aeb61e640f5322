"""Issue #12: weight-free graphs made from checkpoint A, bound to checkpoint B's safetensors in a
process where `import torch` fails, give PyTorch's outputs with B's weights (reduced real
architecture: `export.reduced`, with a ControlNet), and every bad input is refused with the key
named before ONNX Runtime opens a graph."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.core.noise import draw_noise
from sprint_desktop.core.paths import project_root
from sprint_desktop.core.request import GenerateRequest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

STEPS = (1, 2, 4)
PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="session")
def reduced_a(tmp_path_factory) -> Path:
    from sprint_desktop.export.reduced import save_reduced

    return save_reduced(tmp_path_factory.mktemp("reduced-a") / "reduced-sprint", seed=0)


@pytest.fixture(scope="session")
def reduced_b(tmp_path_factory) -> Path:
    from sprint_desktop.export.reduced import save_reduced

    return save_reduced(tmp_path_factory.mktemp("reduced-b") / "reduced-sprint", seed=10)


@pytest.fixture(scope="session")
def library(reduced_a, tmp_path_factory) -> Path:
    """The fp32 graphs exported from checkpoint A (checked against PyTorch on A by the exporter)."""
    from sprint_desktop.export.graph_only import export_model_graphs

    out = tmp_path_factory.mktemp("graphs")
    export_model_graphs(reduced_a, out, precision="fp32")
    return out


@pytest.fixture(scope="session")
def torch_b(reduced_b):
    from sprint_desktop.engine.torch_backend import TorchEngine

    engine = TorchEngine(reduced_b, device="cpu", dtype="fp32")
    engine.load()
    return engine


def _cases(engine) -> dict[str, np.ndarray]:
    """Inputs for every comparison: token ids, a latent, a sketch and noise for 1/2/4 steps."""
    rng = np.random.default_rng(5)
    info = engine.info
    shape = (1, info.latent_channels, info.default_height // 2, info.default_width // 2)
    sketch = np.full((info.default_height, info.default_width, 3), 255, np.uint8)
    sketch[4:12, 3:9] = 0
    cases = {
        "ids": rng.integers(4, 20, (1, 9)).astype(np.int64),
        "latent": rng.standard_normal(shape).astype(np.float32),
        "sketch": sketch,
    }
    for steps in STEPS:
        cases[f"noise{steps}"] = np.stack([draw_noise(3, shape[1:], steps)], axis=1)
    return cases


RUN_BOUND = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any import of torch now raises ImportError
    import numpy as np
    from pathlib import Path
    from sprint_desktop.core.request import GenerateRequest
    from sprint_desktop.engine.onnx_backend import OnnxEngine
    from sprint_desktop.export.binder import bind

    model, library, root, cases_file, out_file, prompt = sys.argv[1:7]
    bound = bind(model, "fp32", root=Path(root), dirs=[Path(library)])
    engine = OnnxEngine(bound, device="cpu")
    engine.load()
    cases = dict(np.load(cases_file))
    out = {"ids": engine._run_session("text_encoder", {"input_ids": cases["ids"], "attention_mask": np.ones_like(cases["ids"])})}
    out["decoded"] = engine.decode(cases["latent"])
    for steps in (1, 2, 4):
        for kind in ("none", "sketch"):
            request = engine.resolve(GenerateRequest(
                prompt, steps=steps, seed=3, control_image=cases["sketch"] if kind == "sketch" else None))
            embeds, mask, _, _ = engine.encode_prompt(request.prompt)
            latents = engine.denoise(request, embeds, mask, cases[f"noise{steps}"])
            out[f"{kind}{steps}"] = engine.decode(latents)
    np.savez(out_file, **out)
    print(sorted(m for m in ("torch", "diffusers", "transformers") if sys.modules.get(m) is not None))
    print(bound)
    """
)


def _run_without_torch(
    code: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(project_root()), **(env or {})},
    )


@pytest.fixture(scope="session")
def bound_outputs(reduced_b, library, torch_b, tmp_path_factory) -> dict[str, np.ndarray]:
    tmp = tmp_path_factory.mktemp("bound-run")
    np.savez(tmp / "cases.npz", **_cases(torch_b))
    proc = _run_without_torch(
        RUN_BOUND,
        str(reduced_b),
        str(library),
        str(tmp / "bound"),
        str(tmp / "cases.npz"),
        str(tmp / "out.npz"),
        PROMPT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-2] == "[]"  # nothing imported torch, diffusers or transformers
    return dict(np.load(tmp / "out.npz"))


def test_the_graphs_hold_no_weights(library, reduced_a):
    """Every initializer that is a weight is external, named in the record with its source; the graph
    files hold only config-derived tensors."""
    records = [json.loads(p.read_text()) for p in sorted(library.glob("*.json"))]
    assert sorted(r["component"] for r in records) == sorted(
        ["text_encoder", "controlnet", "transformer", "vae_decoder", "vae_encoder"]
    )
    for record in records:
        assert record["initializers"], record["name"]
        assert record["inline_bytes"] < 64 << 10, (record["name"], record["inline_bytes"])
        weights = sum(e["length"] for e in record["initializers"])
        assert (library / f"{record['name']}.onnx").stat().st_size < weights
        assert not (library / record["weights_file"]).exists()
        for entry in record["initializers"]:
            assert set(entry) >= {
                "key",
                "source_file",
                "source_dtype",
                "shape",
                "dtype",
                "transform",
                "offset",
                "length",
            }
            assert entry["source_file"].endswith(".safetensors") and entry["source_dtype"] == "F32"


def test_text_encoder_of_b_matches_pytorch(bound_outputs, torch_b):
    ids = _cases(torch_b)["ids"]
    with torch.inference_mode():
        ref = torch_b.text_encoder(
            torch.from_numpy(ids), attention_mask=torch.ones_like(torch.from_numpy(ids))
        )[0]
    err = float(np.abs(bound_outputs["ids"] - ref.numpy()).max())
    assert err < 1e-3, err


def test_decoder_of_b_matches_pytorch(bound_outputs, torch_b):
    latent = _cases(torch_b)["latent"]
    with torch.inference_mode():
        ref = np.asarray(torch_b.decode(torch.from_numpy(latent)))
    assert np.abs(bound_outputs["decoded"] - ref).max() < 1e-3


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("kind", ["none", "sketch"])
def test_images_of_b_match_pytorch(bound_outputs, torch_b, kind, steps):
    cases = _cases(torch_b)
    request = torch_b.resolve(
        GenerateRequest(
            PROMPT, steps=steps, seed=3, control_image=cases["sketch"] if kind == "sketch" else None
        )
    )
    with torch.inference_mode():
        embeds, mask, _, _ = torch_b.encode_prompt(request.prompt)
        ref = np.asarray(torch_b.decode(torch_b.denoise(request, embeds, mask, cases[f"noise{steps}"])))
    out = bound_outputs[f"{kind}{steps}"]
    assert out.shape == ref.shape
    err = float(np.abs(out - ref).max())
    assert err < 1e-3, err


def test_the_weights_of_b_are_what_ran(bound_outputs, reduced_a, torch_b):
    """Parity with B is not parity with A: the two checkpoints give other images."""
    from sprint_desktop.engine.torch_backend import TorchEngine

    a = TorchEngine(reduced_a, device="cpu", dtype="fp32")
    a.load()
    cases = _cases(torch_b)
    request = a.resolve(GenerateRequest(PROMPT, steps=1, seed=3))
    with torch.inference_mode():
        embeds, mask, _, _ = a.encode_prompt(request.prompt)
        image_a = np.asarray(a.decode(a.denoise(request, embeds, mask, cases["noise1"])))
    assert np.abs(image_a - bound_outputs["none1"]).max() > 0.05


def test_the_sketch_changes_the_image(bound_outputs):
    assert np.abs(bound_outputs["sketch2"] - bound_outputs["none2"]).max() > 0.05


# ------------------------------------------------------------------------------------ bad inputs
@pytest.fixture
def model_b(reduced_b, tmp_path) -> Path:
    """A private copy of checkpoint B to damage."""
    path = tmp_path / "models" / reduced_b.name
    shutil.copytree(reduced_b, path)
    return path


def _bind(model: Path, library: Path, root: Path, **kwargs) -> Path:
    from sprint_desktop.export.binder import bind

    return bind(model, "fp32", root=root, dirs=[library], **kwargs)


def _rewrite(file: Path, change) -> None:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(file))
    change(tensors)
    save_file(tensors, str(file))


def _nothing_bound(root: Path) -> bool:
    return not root.exists() or not any(root.iterdir())


def test_a_truncated_file_is_refused_by_name(model_b, library, tmp_path):
    file = model_b / "transformer" / "diffusion_pytorch_model.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match="diffusion_pytorch_model.safetensors is truncated"):
        _bind(model_b, library, tmp_path / "bound")
    assert _nothing_bound(tmp_path / "bound")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("proj_out.weight"), "no tensor 'proj_out.weight'"),
        (lambda t: t.update({"extra.weight": np.zeros(3, np.float32)}), "no place for.*'extra.weight'"),
        (
            lambda t: t.update({"proj_out.weight": np.zeros((32, 31), np.float32)}),
            "'proj_out.weight' has shape \\[32, 31\\]",
        ),
        (lambda t: t.update({"proj_out.weight": np.zeros((32, 32), np.int64)}), "'proj_out.weight' is I64"),
    ],
    ids=["missing", "extra", "shape", "dtype"],
)
def test_bad_tensors_are_refused_with_the_key_named(model_b, library, tmp_path, change, message):
    _rewrite(model_b / "transformer" / "diffusion_pytorch_model.safetensors", change)
    with pytest.raises(ModelLoadError, match=message):
        _bind(model_b, library, tmp_path / "bound")
    assert _nothing_bound(tmp_path / "bound")


def test_another_architecture_is_refused_naming_what_differs(model_b, library, tmp_path):
    config = model_b / "transformer" / "config.json"
    data = json.loads(config.read_text())
    data["num_layers"] = 5
    config.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError) as err:
        _bind(model_b, library, tmp_path / "bound")
    text = str(err.value)
    assert "transformer.num_layers: the model has 5, the graph was made for 3" in text
    assert "sprint export-onnx --graph-only" in text


def test_a_tampered_graph_is_detected(model_b, library, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(library, lib)
    graph = next(lib.glob("transformer-*.onnx"))
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match its record"):
        _bind(model_b, lib, tmp_path / "bound")


def test_a_tampered_bound_graph_is_not_used(model_b, library, tmp_path):
    from sprint_desktop.export.binder import find_bound

    bound = _bind(model_b, library, tmp_path / "bound")
    graph = next(bound.glob("transformer-*.onnx"))
    graph.write_bytes(graph.read_bytes() + b"\0")
    assert find_bound(model_b, "fp32", tmp_path / "bound") is None
    again = _bind(model_b, library, tmp_path / "bound")  # bound again from the library's graph
    assert find_bound(model_b, "fp32", tmp_path / "bound") == again


def test_not_enough_space_is_refused_before_writing(model_b, library, tmp_path, monkeypatch):
    import sprint_desktop.export.binder as binder

    real = shutil.disk_usage
    monkeypatch.setattr(binder.shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    with pytest.raises(ModelLoadError, match="GiB free in"):
        _bind(model_b, library, tmp_path / "bound")
    assert _nothing_bound(tmp_path / "bound")


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), KeyboardInterrupt()], ids=["disk-full", "ctrl-c"]
)
def test_an_interrupted_binding_leaves_nothing_used(model_b, library, tmp_path, error):
    from sprint_desktop.export.binder import find_bound

    root = tmp_path / "bound"
    calls = []

    def progress(stage: str, done: int, total: int) -> None:
        calls.append(stage)
        if stage.startswith("binding") and len(calls) == 2:
            raise error

    with pytest.raises(ModelLoadError if isinstance(error, OSError) else KeyboardInterrupt):
        _bind(model_b, library, root, progress=progress)
    assert _nothing_bound(root)
    assert find_bound(model_b, "fp32", root) is None
    assert (_bind(model_b, library, root) / "manifest.json").is_file()  # the next run starts over


def test_a_killed_binding_is_ignored_and_cleaned(model_b, library, tmp_path):
    from sprint_desktop.export.binder import WORK_PREFIX, find_bound
    from sprint_desktop.export.work_dirs import host_tag

    root = tmp_path / "bound"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = root / f"{WORK_PREFIX}{host_tag()}-{gone.pid}-x1"  # its process is gone
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text("{}")
    assert find_bound(model_b, "fp32", root) is None
    _bind(model_b, library, root)
    assert not stale.exists()


def test_binding_is_reused_and_follows_the_weights(model_b, library, tmp_path):
    """Same files: the same folder. Other modification times, same bytes: the same folder (found by
    the content hash, then fast again). Other bytes: a new binding."""
    root = tmp_path / "bound"
    first = _bind(model_b, library, root)
    assert _bind(model_b, library, root) == first
    for path in model_b.rglob("*.safetensors"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert _bind(model_b, library, root) == first
    manifest = json.loads((first / "manifest.json").read_text())
    from sprint_desktop.export.cache import model_fingerprint

    assert manifest["fingerprint"] == model_fingerprint(model_b)
    _rewrite(
        model_b / "transformer" / "diffusion_pytorch_model.safetensors",
        lambda t: t.update({"proj_out.weight": t["proj_out.weight"] * 2}),
    )
    assert _bind(model_b, library, root) != first


def test_bf16_weights_bind_to_fp32_graphs(model_b, library, tmp_path):
    """A checkpoint stored in bf16 (as the published ones are) binds: the conversion is numpy's."""
    from sprint_desktop.export.binder import read_tensor, safetensors_index

    file = model_b / "transformer" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(file))
    save_file({k: v.to(torch.bfloat16) for k, v in tensors.items()}, str(file))
    index = safetensors_index(model_b / "transformer")
    tensor = index["proj_out.weight"]
    assert tensor.dtype == "BF16"
    with file.open("rb") as fh:
        value = read_tensor(tensor, "float32", fh)
    assert np.array_equal(value, tensors["proj_out.weight"].to(torch.bfloat16).float().numpy())
    with file.open("rb") as fh:
        half = read_tensor(tensor, "float16", fh)
    assert np.array_equal(half, tensors["proj_out.weight"].to(torch.bfloat16).half().numpy())
    assert (_bind(model_b, library, tmp_path / "bound") / "manifest.json").is_file()


# ------------------------------------------------------------------ installer path, end to end
GENERATE_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # the packaged app has no PyTorch
from sprint_desktop.cli import main
code = main(sys.argv[1:])
print(sorted(m for m in ("torch", "diffusers", "transformers") if sys.modules.get(m) is not None))
sys.exit(code)
"""


def test_download_then_generate_with_onnx_and_no_torch(
    reduced_b, library, torch_b, tmp_path, monkeypatch, hub_online
):
    """`sprint download` of the reduced real model from the loopback hub, then `sprint generate
    --backend onnx` in a process where torch cannot be imported: the installed graphs are bound to
    the downloaded weights (progress on stderr) and the image equals PyTorch's to 2/255."""
    from PIL import Image

    from sprint_desktop.cli import main
    from sprint_desktop.core.metadata import read_png_params
    from sprint_desktop.store import catalog

    from ..store.fake_hub import FakeHub, hub_entry, use_hub_catalog

    entry = hub_entry("reduced-sprint", "org/reduced", title="Reduced", resolution=16, controlnet=True)
    use_hub_catalog(monkeypatch, tmp_path, entry)
    with FakeHub("org/reduced", reduced_b) as hub:
        assert main(["download", "reduced-sprint", "--endpoint", hub.url]) == 0
    folder = catalog.state_of(catalog.find_entry("reduced-sprint")).folder
    out = tmp_path / "image.png"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "SPRINT_GRAPHS": str(library), "HF_HUB_OFFLINE": "1"}
    args = [
        "generate",
        PROMPT,
        "--model",
        str(folder),
        "--backend",
        "onnx",
        "--seed",
        "4",
        "--steps",
        "2",
        "-o",
        str(out),
    ]
    proc = _run_without_torch(GENERATE_WITHOUT_TORCH, *args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "binding" in proc.stderr
    assert read_png_params(out)["backend"] == "onnx"
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    expected = torch_b.generate(GenerateRequest(PROMPT, seed=4, steps=2)).image.astype(int)
    assert image.shape == expected.shape
    assert np.abs(image - expected).max() <= 2
    # The second run finds the binding: nothing is written again.
    proc = _run_without_torch(GENERATE_WITHOUT_TORCH, *args, env=env)
    assert proc.returncode == 0 and "binding" not in proc.stderr


def test_a_model_without_graphs_says_how_to_make_them(reduced_b, library, tmp_path):
    """No PyTorch, graphs for another architecture only: one clear line naming what differs."""
    model = tmp_path / "other"
    shutil.copytree(reduced_b, model)
    config = model / "text_encoder" / "config.json"
    data = json.loads(config.read_text())
    data["head_dim"] = 16
    config.write_text(json.dumps(data))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "SPRINT_GRAPHS": str(library)}
    args = ["generate", PROMPT, "--model", str(model), "--backend", "onnx", "-o", str(tmp_path / "x.png")]
    proc = _run_without_torch(GENERATE_WITHOUT_TORCH, *args, env=env)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "text_encoder.head_dim: the model has 16, the graph was made for 32" in line
    assert "sprint export-onnx --graph-only" in line


def test_big_tensors_are_converted_in_pieces(model_b, library, tmp_path, monkeypatch):
    """Pieces of 7 elements (instead of 16M) give the same weights files, bit for bit."""
    import sprint_desktop.export.binder as binder

    whole = _bind(model_b, library, tmp_path / "whole")
    monkeypatch.setattr(binder, "CHUNK_ELEMENTS", 7)
    pieces = _bind(model_b, library, tmp_path / "pieces")
    files = sorted(p.name for p in whole.glob("*.weights"))
    assert files and files == sorted(p.name for p in pieces.glob("*.weights"))
    for name in files:
        assert (whole / name).read_bytes() == (pieces / name).read_bytes()


def test_one_graph_binds_alone_for_a_measurement(model_b, library, tmp_path):
    """`bind(components=...)` without the text encoder (the trace check binds only the transformer):
    the manifest does without the text encoder's instruction lines."""
    bound = _bind(model_b, library, tmp_path / "bound", components=("transformer",))
    assert [p.name.split("-")[0] for p in bound.glob("*.onnx")] == ["transformer"]
    assert json.loads((bound / "manifest.json").read_text())["chi_lines"] == []


def test_tensors_are_read_in_pieces_not_mapped(model_b, monkeypatch):
    """The source file is read piece by piece (a mapped 7 GB checkpoint counted as the process's
    memory: 9.4 GB peak RSS binding 0.6B), never more than one piece at a time."""
    import sprint_desktop.export.binder as binder

    monkeypatch.setattr(binder, "CHUNK_ELEMENTS", 7)
    tensor = binder.safetensors_index(model_b / "transformer")["proj_out.weight"]
    reads = []

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def seek(self, offset):
            self.fh.seek(offset)

        def read(self, n):
            reads.append(n)
            return self.fh.read(n)

    with tensor.file.open("rb") as fh:
        value = binder.read_tensor(tensor, "float32", Counting(fh))
    with tensor.file.open("rb") as fh:
        fh.seek(tensor.begin)
        whole = np.frombuffer(fh.read(tensor.end - tensor.begin), np.float32).reshape(tensor.shape)
    assert np.array_equal(value, whole)
    assert len(reads) == -(-whole.size // 7) and max(reads) == 7 * 4


def test_cli_export_graph_only(tiny_model_dir, tmp_path, capsys):
    """`sprint export-onnx --graph-only` writes one graph and one record per component, no weights."""
    from sprint_desktop.cli import main

    out = tmp_path / "graphs"
    assert main(["export-onnx", "--graph-only", "--model", str(tiny_model_dir), "--out", str(out)]) == 0
    assert "4 graphs" in capsys.readouterr().out
    assert sorted(p.name.split("-")[0] for p in out.glob("*.onnx")) == [
        "text_encoder",
        "transformer",
        "vae_decoder",
        "vae_encoder",
    ]
    assert len(list(out.glob("*.json"))) == 4 and not list(out.glob("*.weights"))


def test_cli_islands_precision_needs_graph_only(tiny_model_dir, capsys):
    from sprint_desktop.cli import main

    assert main(["export-onnx", "--model", str(tiny_model_dir), "--precision", "fp16-islands"]) != 0
    err = capsys.readouterr().err
    assert "add --graph-only" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_window_shows_the_binding(model_b, library, tmp_path, monkeypatch, qtbot):
    """The app's engine worker binds a model with installed graphs and says so in the status line."""
    from sprint_desktop.ui.worker import EngineWorker

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SPRINT_GRAPHS", str(library))
    worker = EngineWorker()
    messages: list[str] = []
    infos: list = []
    worker.load_progress.connect(messages.append)
    worker.loaded.connect(infos.append)
    worker.load_failed.connect(messages.append)
    try:
        worker.load(str(model_b), backend="onnx", device="cpu")
        qtbot.waitUntil(lambda: bool(infos), timeout=300_000)
    finally:
        worker.stop()
    assert infos[0].backend == "onnx"
    assert any(m.startswith("binding text_encoder:") and "MiB of weights" in m for m in messages), messages

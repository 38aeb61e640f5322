"""The bad-input corpus, part 2: model folders. Each case is refused by the check that runs before
any weights are read, with one line naming the file, and the folder is left as it was."""

from __future__ import annotations

import json
import os
import shutil
import struct

import pytest

from sprint_desktop.cli import main
from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.formats.model_folder import inspect_model_folder

from .bad_inputs import one_line

TRANSFORMER_WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


def _json(rel, value):
    def edit(m):
        (m / rel).write_text(value if isinstance(value, str) else json.dumps(value))

    return edit


def _merge(rel, **values):
    def edit(m):
        data = json.loads((m / rel).read_text()) if (m / rel).exists() else {}
        data.update(values)
        (m / rel).write_text(json.dumps(data))

    return edit


def _weights(transform):
    def edit(m):
        path = m / TRANSFORMER_WEIGHTS
        path.write_bytes(transform(path.read_bytes()))

    return edit


def _replace_with(rel, kind):
    def edit(m):
        path = m / rel
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "loop":
            path.symlink_to(path)

    return edit


def _header(header: bytes):
    return _weights(lambda data: struct.pack("<Q", len(header)) + header)


def _rm(rel):
    def edit(m):
        path = m / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return edit


def _pickles(m):
    for f in (m / "transformer").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))


def _empty(m):
    for child in m.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def _big_index(m):
    with (m / "model_index.json").open("wb") as fh:
        fh.truncate(40 * 2**20)


BAD_MODELS = {
    "empty folder": _empty,
    "model_index missing": _rm("model_index.json"),
    "model_index not json": _json("model_index.json", "{nope"),
    "model_index a list": _json("model_index.json", [1]),
    "model_index nested": _json("model_index.json", "[" * 100_000 + "]" * 100_000),
    "model_index 40 MB": _big_index,
    "model_index a fifo": _replace_with("model_index.json", "fifo"),
    "model_index a loop": _replace_with("model_index.json", "loop"),
    "another pipeline": _merge("model_index.json", _class_name="StableDiffusionPipeline"),
    "remote code component": _merge("model_index.json", transformer=["evil_lib", "Backdoor"]),
    "component entry malformed": _merge("model_index.json", vae="AutoencoderDC"),
    "component folder missing": _rm("vae"),
    "config missing": _rm("transformer/config.json"),
    "config binary": _json("transformer/config.json", "\x00\x01\x02"),
    "config a folder": _replace_with("transformer/config.json", "dir"),
    "only pickle weights": _pickles,
    "no weights": _rm(TRANSFORMER_WEIGHTS),
    "weights truncated": _weights(lambda d: d[: len(d) // 2]),
    "weights 4 bytes": _weights(lambda d: d[:4]),
    "header length huge": _weights(lambda d: struct.pack("<Q", 2**62) + d[8:]),
    "header not json": _header(b"{not json at all}"),
    "header a list": _header(b"[1, 2, 3]"),
    "header entry without offsets": _header(b'{"w": {"dtype": "F32", "shape": [1]}}'),
    "header nested": _header(b"[" * 50_000 + b"]" * 50_000),
    "weights a fifo": _replace_with(TRANSFORMER_WEIGHTS, "fifo"),
    "weights a folder": _replace_with(TRANSFORMER_WEIGHTS, "dir"),
    "weights a loop": _replace_with(TRANSFORMER_WEIGHTS, "loop"),
    "tokenizer files missing": lambda m: [f.unlink() for f in (m / "tokenizer").iterdir()],
    "shard index broken": _json("transformer/diffusion_pytorch_model.safetensors.index.json", "{}"),
    "shard outside folder": _json(
        "transformer/diffusion_pytorch_model.safetensors.index.json",
        {"weight_map": {"a": "../../x.safetensors"}},
    ),
    "default_size 65536": _merge("sprint_desktop.json", default_size=[65536, 65536]),
    "max_sequence_length -5": _merge("sprint_desktop.json", max_sequence_length=-5),
    "num_layers 100000": _merge("transformer/config.json", num_layers=100000),
    "vocab 10^10": _merge("text_encoder/config.json", vocab_size=10**10),
    "widths too large together": _merge(
        "transformer/config.json", num_layers=256, num_attention_heads=512, attention_head_dim=1024
    ),
    "vae channels a string": _merge("vae/config.json", decoder_block_out_channels="wide"),
}


@pytest.fixture
def model(tiny_model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def _listing(folder):
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not p.is_file():
            out[str(p.relative_to(folder))] = "special"
        else:
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_model_folder(case, model):
    BAD_MODELS[case](model)
    before = _listing(model)
    with pytest.raises(ModelLoadError) as info:
        inspect_model_folder(model)
    one_line(str(info.value))
    assert _listing(model) == before


@pytest.mark.parametrize(
    "case", ["model_index a fifo", "weights a fifo", "num_layers 100000", "header nested"]
)
def test_model_folder_through_the_cli(case, model, tmp_path, capsys):
    BAD_MODELS[case](model)
    code = main(["generate", "a red circle", "-o", str(tmp_path / "out.png"), "--model", str(model)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("sprint: error: ")
    one_line(err)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("path", ["missing", "a file"])
def test_model_path_that_is_not_a_folder(path, tmp_path):
    target = tmp_path / "m"
    if path == "a file":
        target.write_text("x")
    with pytest.raises(ModelLoadError) as info:
        inspect_model_folder(target)
    one_line(str(info.value))

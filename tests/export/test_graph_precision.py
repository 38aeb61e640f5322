"""Issue #12 item 4 and the published architectures' export: the Gemma-2 text encoder with fp16
weight products and fp32 islands, and graphs traced smaller than the model's own size (checked
against PyTorch at both sizes). Reduced real architecture (`export.reduced`), random weights."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    from sprint_desktop.export.reduced import save_reduced

    return save_reduced(tmp_path_factory.mktemp("reduced") / "reduced-sprint", seed=0)


def _bound_text_encoder(model, precision, tmp_path):
    from sprint_desktop.export.binder import bind
    from sprint_desktop.export.graph_only import export_model_graphs

    library = tmp_path / f"graphs-{precision}"
    export_model_graphs(model, library, precision=precision, only=("text_encoder",))
    bound = bind(model, precision, root=tmp_path / "bound", dirs=[library], components=("text_encoder",))
    return next(bound.glob("text_encoder-*.onnx")), json.loads(
        next(library.glob("text_encoder-*.json")).read_text()
    )


def test_text_encoder_islands_keep_norms_and_residuals_in_fp32(reduced, tmp_path):
    import onnxruntime as ort
    from transformers import Gemma2Model

    graph, record = _bound_text_encoder(reduced, "fp16-islands", tmp_path)
    dtypes = {e["key"]: e["dtype"] for e in record["initializers"]}
    assert dtypes["embed_tokens.weight"] == "float16"
    products = [k for k in dtypes if k.endswith("_proj.weight")]
    assert products and all(dtypes[k] == "float16" for k in products)
    norms = [k for k in dtypes if "norm" in k]
    assert norms and all(dtypes[k] == "float32" for k in norms)

    model = onnx.load(str(graph), load_external_data=False)
    kinds = collections.Counter()
    for node in model.graph.node:  # the ops that do the arithmetic outside the products: fp32
        if node.op_type in ("Add", "Softmax", "Tanh", "ReduceMean", "Pow", "Sqrt"):
            kinds[node.op_type] += 1
    assert kinds["Softmax"] and kinds["Tanh"] and kinds["ReduceMean"]
    info = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output]}
    typed = collections.Counter()
    for node in model.graph.node:
        if node.op_type in kinds:
            assert info.get(node.output[0]) != onnx.TensorProto.FLOAT16, (node.name, node.op_type)
            typed[node.op_type] += info.get(node.output[0]) == onnx.TensorProto.FLOAT
    assert typed["Softmax"] == kinds["Softmax"] and typed["Tanh"] == kinds["Tanh"]  # (some Adds are int64)
    assert any(
        n.op_type == "MatMul" and info.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in model.graph.node
    )

    ids = np.random.default_rng(0).integers(4, 20, (1, 9))
    encoder = Gemma2Model.from_pretrained(reduced / "text_encoder").eval()
    with torch.inference_mode():
        ref = encoder(torch.from_numpy(ids), attention_mask=torch.ones(1, 9, dtype=torch.int64))[0].numpy()
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    assert got.dtype == np.float32  # the graph's output keeps its fp32 type
    assert np.abs(got - ref).max() < 2e-2 * np.abs(ref).max()

    fp32_graph, fp32_record = _bound_text_encoder(reduced, "fp32", tmp_path)
    assert record["weights_size"] < 0.6 * fp32_record["weights_size"]


def test_graphs_traced_small_are_checked_at_the_model_size(reduced, tmp_path, monkeypatch):
    """The published architectures are traced at 8 x 8 latents (fast); the graph must give PyTorch's
    output at the model's own size too, and the exporter checks that when the sizes differ."""
    from sprint_desktop.engine.torch_backend import TorchEngine
    from sprint_desktop.export import graph_only
    from sprint_desktop.export.onnx_export import own_latent

    engine = TorchEngine(reduced, device="cpu", dtype="fp32", prefix_cache=False)
    engine.load()
    own = own_latent(engine)
    assert own > 2
    checked = []
    real_check = graph_only.golden_check

    def spy(path, module, names, cases, tol):
        checked.append([tuple(case[0].shape[-2:]) for case in cases])
        real_check(path, module, names, cases, tol)

    monkeypatch.setattr(graph_only, "golden_check", spy)  # records the sizes, then really checks
    graph_only.export_graphs(
        engine, tmp_path / "graphs", "fp32", only=("transformer", "vae_decoder"), trace_latent=2
    )
    assert len(checked) == 2
    for sizes in checked:
        assert sizes[0] == (2, 2) and (own, own) in sizes


def test_constants_the_exporter_writes_out_go_back_inside_the_graph(tmp_path):
    """Above 2 GB the exporter writes large Constant values (a LayerNorm without affine weights: its
    ones and zeros) to files of their own; the weight-free graph must hold them, or ONNX Runtime
    refuses the bound graph ("External data path does not exist": the published transformers)."""
    from sprint_desktop.export.graph_only import _drop_initializer_inputs, _strip_weights
    from sprint_desktop.export.onnx_export import OPSET

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4096, 8, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(torch.nn.functional.layer_norm(x, (4096,)))

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = Net()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x)

    module = Wrapper().eval()
    full = tmp_path / "full" / "full.onnx"
    full.parent.mkdir()
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.randn(2, 4096),),
            str(full),
            dynamo=False,
            opset_version=OPSET,
            input_names=["x"],
            output_names=["y"],
            external_data=True,
            do_constant_folding=False,
            keep_initializers_as_inputs=True,
        )
    _drop_initializer_inputs(full)
    # Above protobuf's 2 GB (the published transformers in fp32, 1.6B in fp16) the exporter saves
    # every tensor of 1 KB or more, Constant values included, to a file of its own: the same here.
    whole = onnx.load(str(full))
    onnx.save_model(
        whole,
        str(full),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=1024,
        convert_attribute=True,
    )
    exported = onnx.load(str(full), load_external_data=False)
    written_out = [
        n for n in exported.graph.node for a in n.attribute if a.type == 4 and a.t.data_location == 1
    ]
    assert written_out  # the exporter did write a constant to its own file (what the fix is for)

    graph = tmp_path / "graph.onnx"
    record = _strip_weights(full, graph, module.m, {})
    assert [e["key"] for e in record["initializers"]] == ["proj.weight"]
    weights = np.random.default_rng(0).standard_normal((8, 4096)).astype(np.float32)
    data = bytearray(record["weights_size"])
    entry = record["initializers"][0]
    data[entry["offset"] : entry["offset"] + entry["length"]] = weights.tobytes()
    (tmp_path / record["weights_file"]).write_bytes(bytes(data))
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((2, 4096)).astype(np.float32)
    got = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        module.m.proj.weight.copy_(torch.from_numpy(weights))
        ref = module(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() < 1e-3

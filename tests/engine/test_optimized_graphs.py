"""The per-machine cache of ONNX Runtime's optimized graphs (engine.optimized_graphs), on real
onnxruntime sessions of small real graphs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sprint_desktop.engine import optimized_graphs
from sprint_desktop.engine.providers import Attempt, open_sessions

CPU = ["CPUExecutionProvider"]


def write_graph(path: Path, factor: float) -> Path:
    """y = conv(x, w) * (a + b): the sum is folded and the conv prepacked when optimized."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([factor - 1.0], np.float32), "a"),
        numpy_helper.from_array(np.array([1.0], np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a", "b"], ["k"]),
        helper.make_node("Mul", ["c", "k"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def options() -> ort.SessionOptions:
    o = ort.SessionOptions()
    o.log_severity_level = 3
    return o


X = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)


def run(session) -> np.ndarray:
    return session.run(None, {"x": X})[0]


def plain(path: Path) -> np.ndarray:
    return run(ort.InferenceSession(str(path), sess_options=options(), providers=CPU))


def cached_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.onnx")) if root.exists() else []


def test_first_open_saves_the_optimized_graph_and_the_next_opens_it(tmp_path):
    graph = write_graph(tmp_path / "g.onnx", 2.0)
    root = tmp_path / "cache"
    first = optimized_graphs.open_session(ort, str(graph), options, CPU, root)
    np.testing.assert_allclose(run(first), plain(graph), rtol=1e-5, atol=1e-5)
    (saved,) = cached_files(root)
    assert not list(root.glob(".*.tmp"))
    # The next open takes the cached graph, not the source: a different valid graph put in its
    # place (x3 instead of x2) shows in the output.
    write_graph(tmp_path / "other.onnx", 3.0)
    optimized_graphs.open_session(ort, str(tmp_path / "other.onnx"), options, CPU, tmp_path / "c2")
    (other_saved,) = cached_files(tmp_path / "c2")
    saved.write_bytes(other_saved.read_bytes())
    second = optimized_graphs.open_session(ort, str(graph), options, CPU, root)
    np.testing.assert_allclose(run(second), plain(graph) * 1.5, rtol=1e-5, atol=1e-5)


def test_a_changed_source_graph_gets_a_new_entry(tmp_path):
    graph = write_graph(tmp_path / "g.onnx", 2.0)
    root = tmp_path / "cache"
    optimized_graphs.open_session(ort, str(graph), options, CPU, root)
    write_graph(graph, 5.0)
    os.utime(graph, ns=(1, 1))  # another time too, whatever the file system's resolution
    session = optimized_graphs.open_session(ort, str(graph), options, CPU, root)
    np.testing.assert_allclose(run(session), plain(graph), rtol=1e-5, atol=1e-5)
    assert len(cached_files(root)) == 2


def test_a_damaged_cached_graph_is_replaced(tmp_path):
    graph = write_graph(tmp_path / "g.onnx", 2.0)
    root = tmp_path / "cache"
    optimized_graphs.open_session(ort, str(graph), options, CPU, root)
    (saved,) = cached_files(root)
    saved.write_bytes(b"not a graph")
    session = optimized_graphs.open_session(ort, str(graph), options, CPU, root)
    np.testing.assert_allclose(run(session), plain(graph), rtol=1e-5, atol=1e-5)
    assert onnx.load(saved).graph.node  # rebuilt: a real graph again


def test_an_unwritable_cache_still_opens_the_graph(tmp_path):
    graph = write_graph(tmp_path / "g.onnx", 2.0)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder would go")
    session = optimized_graphs.open_session(ort, str(graph), options, CPU, blocker)
    np.testing.assert_allclose(run(session), plain(graph), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Specified provider")
@pytest.mark.parametrize("case", ["gpu provider", "too large"])
def test_only_small_graphs_on_the_cpu_alone_are_cached(tmp_path, monkeypatch, case):
    graph = write_graph(tmp_path / "g.onnx", 2.0)
    root = tmp_path / "cache"
    providers = ["CUDAExecutionProvider", *CPU] if case == "gpu provider" else CPU
    if case == "too large":
        monkeypatch.setattr(optimized_graphs, "MAX_BYTES", graph.stat().st_size - 1)
    session = optimized_graphs.open_session(ort, str(graph), options, providers, root)
    np.testing.assert_allclose(run(session), plain(graph), rtol=1e-5, atol=1e-5)
    assert cached_files(root) == []


def test_external_weights_are_part_of_the_key(tmp_path):
    graph = write_graph(tmp_path / "g.onnx", 2.0)
    weights = tmp_path / "g.weights"
    weights.write_bytes(b"1")
    key = optimized_graphs.cache_key(graph, ort.__version__, "all")
    weights.write_bytes(b"22")
    assert optimized_graphs.cache_key(graph, ort.__version__, "all") != key
    assert optimized_graphs.cache_key(graph, "0.0.0", "all") != key


def test_open_sessions_uses_the_cache_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(optimized_graphs, "cache_dir", lambda: tmp_path / "cache")
    graph = write_graph(tmp_path / "g.onnx", 2.0)
    sessions = open_sessions(ort, {"g": str(graph)}, options, [Attempt("CPU", lambda o: CPU)], [])
    np.testing.assert_allclose(run(sessions["g"]), plain(graph), rtol=1e-5, atol=1e-5)
    assert len(cached_files(tmp_path / "cache")) == 1

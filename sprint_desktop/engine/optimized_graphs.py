"""ONNX Runtime's optimized graphs, cached per machine: most of a session's start-up is graph
optimization (constant folding, fusions, the CPU's NCHWc layouts), and ONNX Runtime can save the
graph it ends with (``SessionOptions.optimized_model_filepath``) and open that one with optimization
off. On the embedded model this takes launch to a ready model from 2.03 s to 0.87-0.91 s (the GUI
bench, docs/BENCHMARKS.md): most of what a launch waits for.

Only for sessions on the CPU provider alone (a GPU provider's optimized graph is tied to its own
partitioning; TensorRT caches its engines itself) and graphs small enough to be saved with their
weights inside (``MAX_BYTES``; a bound graph of a real model would be copied whole). A saved graph
holds layouts for this CPU ("should only be used in the same environment"), so its key covers the
source graph (path, size, modification time, and those of its external weights), the onnxruntime
version, the optimization level and the CPU. A cached graph that fails to open is deleted and the
source graph opened instead; a failure to save changes nothing for the session.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.paths import user_cache_dir

log = logging.getLogger(__name__)

MAX_BYTES = 256 << 20
"""Largest graph (with its external weights) whose optimized form is cached."""

FOLDER = "ort-optimized"


def cache_dir() -> Path:
    return user_cache_dir() / FOLDER


@functools.cache
def _cpu_identity() -> str:
    """What an optimized CPU graph depends on beyond onnxruntime: the architecture, the CPU model and
    its instruction-set flags (Linux; elsewhere the platform's processor string)."""
    text = platform.machine() + "|" + platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("model name", "flags", "Features")):
                text += "|" + line.split(":", 1)[-1].strip()
                if line.startswith(("flags", "Features")):
                    break  # the first CPU's is enough
    except OSError:
        pass
    return text


def _sources(graph: Path) -> list[Path]:
    """The graph file and the external-data files beside it that share its stem (``x.onnx`` ->
    ``x.onnx.data``, ``x.weights``...): what the optimized graph is made from."""
    stem = graph.name.removesuffix(".onnx")
    others = [p for p in graph.parent.glob(f"{stem}.*") if p != graph and p.suffix != ".json"]
    return [graph, *sorted(others)]


def cache_key(graph: Path, ort_version: str, level: str) -> str | None:
    """The key of ``graph``'s optimized form, or None when it is too large to cache (or unreadable)."""
    h = hashlib.sha256()
    total = 0
    try:
        for path in _sources(graph):
            st = path.stat()
            total += st.st_size
            h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    if total > MAX_BYTES:
        return None
    h.update(f"{ort_version}|{level}|{_cpu_identity()}".encode())
    return h.hexdigest()[:32]


def open_session(
    ort: Any,
    path: str,
    make_options: Callable[[], Any],
    providers: list[str] | None,
    root: Path | None = None,
) -> Any:
    """An ``InferenceSession`` for ``path``: from its cached optimized graph when it is on the CPU
    provider alone and cacheable (saving that graph on the first open), else as usual."""
    options = make_options()
    key = None
    if providers == ["CPUExecutionProvider"]:
        key = cache_key(Path(path), ort.__version__, str(options.graph_optimization_level))
    if key is None:
        return _session(ort, path, options, providers)
    folder = root if root is not None else cache_dir()
    cached = folder / f"{key}.onnx"
    if cached.is_file():
        fast = make_options()
        fast.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return _session(ort, str(cached), fast, providers)
        except Exception as exc:  # noqa: BLE001 - a damaged cache file: drop it and start over
            log.warning("the cached optimized graph %s does not open (%s); rebuilding it", cached, exc)
            _remove(cached)
    return _open_and_save(ort, path, options, make_options, providers, cached)


def _open_and_save(
    ort: Any,
    path: str,
    options: Any,
    make_options: Callable[[], Any],
    providers: list[str] | None,
    cached: Path,
) -> Any:
    """Open ``path`` while ONNX Runtime saves its optimized graph to a temporary name, renamed to
    ``cached`` once the session opened (so no half-written file is ever taken)."""
    tmp = cached.with_name(f".{cached.stem}-{os.getpid()}.tmp")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        options.optimized_model_filepath = str(tmp)
        session = _session(ort, path, options, providers)
    except Exception as exc:  # noqa: BLE001 - saving failed (read-only cache, disk full): open as usual
        _remove(tmp)
        log.warning("could not cache the optimized form of %s: %s", path, exc)
        return _session(ort, path, make_options(), providers)
    try:
        tmp.replace(cached)
    except OSError as exc:
        _remove(tmp)
        log.warning("could not keep the optimized form of %s: %s", path, exc)
    return session


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _session(ort: Any, path: str, options: Any, providers: list[str] | None) -> Any:
    if providers is None:
        return ort.InferenceSession(path, sess_options=options)
    return ort.InferenceSession(path, sess_options=options, providers=providers)

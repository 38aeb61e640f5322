"""Opt-in ``torch.compile`` of the PyTorch engine's hot modules (the transformer, the DC-AE decoder
and a ControlNet): Inductor kernels, and with ``reduce-overhead`` CUDA graphs on an NVIDIA GPU. On
the H200 this took the published 1.6B shape at 1024 px from 126 ms to 74.6 ms a 1-step image with
a new prompt (docs/BENCHMARKS.md), at the price of a compile on the first image of each shape.

Inductor keeps what it compiled in ``TORCHINDUCTOR_CACHE_DIR``; by default that is a folder under
the system's temporary directory (gone after a reboot on many systems), so the engine points it at
the app's cache folder (`cache_dir`), where a later launch finds it: the second launch's compile
takes seconds instead of a minute. A ``TORCHINDUCTOR_CACHE_DIR`` the user set is kept.

What cannot compile says so in one line (`compile_problem` before trying, `failure_line` after)
and the engine runs eagerly: compiling is a speed-up, never a reason to lose an image.

Not compiled: the text encoder. With the prefix cache it runs on each prompt's own tokens after the
cached instruction, so its input length changes with every prompt (a recompile, then dynamic
shapes; with CUDA graphs one graph per length) and it takes a deep-copied key/value cache object
as input; it runs once per new prompt only (cached prompts skip it), so little is won for that risk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.paths import user_cache_dir
from ..core.settings import COMPILE_MODES

FOLDER = "torch-inductor"
ENV = "TORCHINDUCTOR_CACHE_DIR"
MAX_LINE = 300
"""A failure's message is cut to this many characters (Inductor's run to pages)."""


def cache_dir() -> Path:
    return user_cache_dir() / FOLDER


def use_persistent_cache() -> Path:
    """Point Inductor's caches (its FX graphs, kernels and Triton's) at the app's cache folder unless
    the user set ``TORCHINDUCTOR_CACHE_DIR``. Inductor reads the variable on every use, but also
    writes its temporary-folder default into it the first time one of its modules is imported, so
    that default counts as unset."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get(ENV)
    if not current or os.path.abspath(current) == os.path.abspath(default_cache_dir()):
        os.environ[ENV] = str(cache_dir())
    return Path(os.environ[ENV])


def normalize_mode(mode: str | None) -> str:
    """``None`` is "off"; anything outside `COMPILE_MODES` is a ValueError naming the choices."""
    mode = "off" if mode is None else mode
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    return mode


def effective_mode(mode: str, device_type: str) -> str:
    """The mode that runs on ``device_type``: CUDA graphs only on CUDA (elsewhere plain Inductor)."""
    if mode == "reduce-overhead" and device_type != "cuda":
        return "default"
    return mode


def compile_problem(device_type: str, backend: str | Callable[..., Any] = "inductor") -> str | None:
    """Why ``backend`` cannot compile on ``device_type`` here (one line), or None when it may.
    Checks what Inductor needs before any minute is spent: Dynamo for this Python, Triton on a GPU,
    a C++ compiler on the CPU. Other backends are checked by ``torch.compile`` itself."""
    import torch

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python or platform"
    if backend != "inductor":
        return None
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return (
                "Inductor needs Triton on an NVIDIA GPU and it is not installed "
                "(pip install triton; on Windows, triton-windows)"
            )
        return None
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception:  # noqa: BLE001 - InvalidCxxCompiler, or Windows' own checks of cl.exe
        return (
            "Inductor needs a C++ compiler on the CPU and none works here (install g++ or clang; "
            "on Windows, Visual Studio's C++ build tools)"
        )
    return None


def compile_module(module: Any, mode: str, backend: str | Callable[..., Any] = "inductor") -> None:
    """Compile ``module`` in place (`torch.nn.Module.compile`: its weights, state dict and attributes
    stay as they are); ``mode`` is the Inductor mode, "default" or "reduce-overhead"."""
    kwargs: dict[str, Any] = {"backend": backend}
    if backend == "inductor" and mode != "default":
        kwargs["mode"] = mode
    module.compile(**kwargs)


def uncompile(module: Any) -> None:
    """Undo `compile_module`: ``Module.compile`` keeps the compiled call in ``_compiled_call_impl``
    and calls the module eagerly when it is None (PyTorch has no public inverse)."""
    module._compiled_call_impl = None


def compile_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean compiling (not the model) failed: Dynamo's, which wrap a backend's
    (`BackendCompilerFailed`, `InductorError`), and Inductor's own compiler errors."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import CppCompileError, InvalidCxxCompiler, OperatorIssue

    return (TorchDynamoException, InvalidCxxCompiler, CppCompileError, OperatorIssue)


def failure_line(exc: BaseException) -> str:
    """One line for a compile failure: the backend's own error where Dynamo wrapped it."""
    inner = getattr(exc, "inner_exception", None)
    if isinstance(inner, BaseException):
        exc = inner
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2] if line.strip())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"

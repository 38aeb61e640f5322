"""Section 2 of the GPU run: the published 0.6B and 1.6B architectures (random weights) at
1024 px, 1/2/4 steps: stock `SanaSprintPipeline`, our PyTorch engine (eager, then with
`torch.compile`, whose ``reduce-overhead`` mode adds CUDA graphs), with and without a ControlNet,
per-stage medians, peak VRAM and parity against stock; then ONNX Runtime on the GPU providers
(CUDA with IO binding; TensorRT-RTX when a wheel brings it) on the embedded model.

The tasks run cheap and sure first (eager rows of both shapes, ONNX), then compiled ones, the
paper's headline shape (1.6B, 1 step, 1024 px) first; each is skipped,
with the reason recorded, when less time is left than it needs, and the record is rewritten after
each one, so a section cut at its deadline keeps what it measured. The measuring loop is
`bench.bench_engine` (the one behind ``sprint bench``), called on engines built here.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .section import Section

TRT_RTX = "NvTensorRTRTXExecutionProvider"


@dataclass
class BenchSettings:
    archs: tuple[str, ...] = ("sana-sprint-1.6b", "sana-sprint-0.6b")
    size: tuple[int, int] | None = (1024, 1024)
    steps: tuple[int, ...] = (1, 2, 4)
    repeats: int = 5
    warmup: int = 2
    device: str = "cuda"
    dtype: str = "bf16"
    compile_backend: str = "inductor"
    compile_modes: tuple[str | None, ...] = ("reduce-overhead", "default")
    onnx_model: Path | None = field(
        default_factory=lambda: Path(__file__).resolve().parents[2] / "models" / "sprint-shapes"
    )
    onnx_repeats: int = 10
    min_left_s: dict[str, float] = field(
        default_factory=lambda: {"eager": 45.0, "compile": 75.0, "onnx": 40.0}
    )
    """Seconds a task needs at least (build + warm-up + timing; compile includes compiling)."""

    @classmethod
    def dry(cls) -> BenchSettings:
        return cls(
            archs=("tiny",),
            size=None,
            steps=(1,),
            repeats=1,
            warmup=1,  # at least one: the cached-prompt case needs its prompt seen once
            device="cpu",
            dtype="fp32",
            compile_backend="eager",  # dynamo traces, no C++ compiler needed
            compile_modes=(None,),
            onnx_repeats=1,
            onnx_model=None,  # the tiny model, saved into the work folder
            min_left_s={"eager": 0.0, "compile": 0.0, "onnx": 0.0},
        )


def _cuda(settings: BenchSettings) -> bool:
    return settings.device.startswith("cuda")


def _memory(settings: BenchSettings, resident: int = 0) -> dict[str, float]:
    """Peak memory since `_reset_memory`; ``resident`` (what it returned: the bytes earlier tasks
    still held, e.g. the 1.6B engine kept for its compiled rows) is taken off for the task's own."""
    import torch

    if not _cuda(settings):
        return {}
    peak = torch.cuda.max_memory_allocated()
    return {
        "peak_allocated_gib": round(peak / 2**30, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "resident_at_start_gib": round(resident / 2**30, 2),
        "task_peak_gib": round((peak - resident) / 2**30, 2),
    }


def _reset_memory(settings: BenchSettings) -> int:
    """Reset the peak counter; returns the bytes allocated now (held by earlier tasks)."""
    import torch

    if not _cuda(settings):
        return 0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return int(torch.cuda.memory_allocated())


def build_engine(arch: str, settings: BenchSettings) -> Any:
    """Our engine over a random-weight pipeline of ``arch``, built directly on the device."""
    import torch

    from ..engine.torch_backend import TorchEngine
    from ..export.random_weights import published_pipeline
    from .builders import tiny_pipeline

    with torch.device(settings.device):  # initialise the weights on the GPU: seconds, not minutes
        pipe = tiny_pipeline() if arch == "tiny" else published_pipeline(arch)
    return TorchEngine.from_pipeline(pipe, name=arch, device=settings.device, dtype=settings.dtype)


def _stock_noise(z0: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """The re-noise draws the stock scheduler takes from a CPU generator seeded ``seed``."""
    import torch

    gen = torch.Generator("cpu").manual_seed(seed)
    draws = [torch.randn(z0.shape, generator=gen).numpy() for _ in range(steps)]
    return np.stack([z0, *draws[: steps - 1]])


PROMPT = "a red circle left of a blue square"


def _start(engine: Any, steps: int, size: tuple[int, int], seed: int) -> tuple[Any, np.ndarray]:
    from ..core.request import GenerateRequest

    request = engine.resolve(GenerateRequest(PROMPT, steps=steps, width=size[0], height=size[1]))
    z0 = np.random.default_rng(seed).standard_normal((1, *engine.latent_shape(request)))
    return request, z0.astype(np.float32)


def images_ours(engine: Any, steps: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Our engine's image for a fixed prompt and the noise the stock pipeline draws."""
    request, z0 = _start(engine, steps, size, seed)
    embeds, mask = engine.encode_prompt(request.prompt)[:2]
    latents = engine.denoise(request, embeds, mask, _stock_noise(z0, steps, seed + 1))
    return engine.decode(latents)


def images_stock(engine: Any, steps: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """The stock pipeline's image from the same start and noise as `images_ours`."""
    import torch

    _, z0 = _start(engine, steps, size, seed)
    with torch.inference_mode():
        return engine.pipeline(
            prompt=PROMPT,
            num_inference_steps=steps,
            intermediate_timesteps=1.3 if steps == 2 else None,
            guidance_scale=4.5,
            height=size[1],
            width=size[0],
            latents=torch.from_numpy(z0),
            generator=torch.Generator("cpu").manual_seed(seed + 1),
            use_resolution_binning=False,
            output_type="np",
        ).images


def _diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"max_abs": round(float(d.max()), 5), "mean_abs": round(float(d.mean()), 6)}


def _size(engine: Any, settings: BenchSettings) -> tuple[int, int]:
    info = engine.info
    return settings.size or (info.default_width, info.default_height)


def eager_task(
    section: Section, arch: str, settings: BenchSettings, engines: dict[str, Any]
) -> dict[str, Any]:
    from .bench import bench_engine

    resident = _reset_memory(settings)
    t0 = time.perf_counter()
    engine = engines[arch] = build_engine(arch, settings)
    build_s = time.perf_counter() - t0
    size = _size(engine, settings)
    parity = {}
    ours = {}
    for n in settings.steps:
        ours[n] = images_ours(engine, n, size)
        parity[str(n)] = _diff(ours[n], images_stock(engine, n, size))
    engines[arch + ":images"] = ours
    report = bench_engine(
        engine,
        label=f"{arch} (random weights)",
        size=size,
        steps=list(settings.steps),
        repeats=settings.repeats,
        warmup=settings.warmup,
        stock=True,
        control=True,
        load_s=build_s,
    )
    report.update(
        {"parity_vs_stock": parity, "memory": _memory(settings, resident), "build_s": round(build_s, 1)}
    )
    return report


def compile_task(
    section: Section, arch: str, mode: str | None, settings: BenchSettings, engines: dict[str, Any]
) -> dict[str, Any]:
    """Our engine compiled as the product compiles it (`TorchEngine.enable_compile`, the engine's
    ``compile`` option: the transformer, the DC-AE decoder and any ControlNet; ``mode`` None is
    Inductor's "default", reduce-overhead also captures CUDA graphs); the first images' compile time
    apart, then the usual timing."""
    import torch

    from .bench import bench_engine

    engine = engines.get(arch)
    if engine is None:
        return {"skipped": f"the eager task of {arch} did not run"}
    torch._dynamo.reset()  # an earlier task's compiled engine: its code and CUDA graphs go
    in_effect = engine.enable_compile(mode or "default", backend=settings.compile_backend)
    if in_effect == "off":
        return {"skipped": engine.notices[-1] if engine.notices else "the engine could not compile"}
    engine.prompt_cache.clear()
    resident = _reset_memory(settings)
    size = _size(engine, settings)
    t0 = time.perf_counter()
    with torch.inference_mode():  # as `generate` runs: the graphs compiled here are the ones timed
        compiled = {n: images_ours(engine, n, size) for n in settings.steps}  # compiles
    compile_s = time.perf_counter() - t0
    eager = engines.get(arch + ":images", {})
    report = bench_engine(
        engine,
        label=f"{arch} (random weights), torch.compile(backend={settings.compile_backend}, mode={in_effect})",
        size=size,
        steps=list(settings.steps),
        repeats=settings.repeats,
        warmup=settings.warmup,
        stock=False,
        control=False,
        load_s=compile_s,
    )
    report.update(
        {
            "compile_s": round(compile_s, 1),
            "parity_vs_eager": {str(n): _diff(compiled[n], eager[n]) for n in compiled if n in eager},
            "memory": _memory(settings, resident),
        }
    )
    return report


def onnx_task(section: Section, settings: BenchSettings, work: Path) -> dict[str, Any]:
    """ONNX Runtime against our PyTorch engine on the embedded model (with and without a sketch),
    on the GPU provider when this onnxruntime has one."""
    import onnxruntime as ort

    from .bench import run_backend_bench

    providers = ort.get_available_providers()
    info: dict[str, Any] = {"providers": providers, "onnxruntime": ort.__version__}
    if TRT_RTX in providers:
        info["tensorrt_rtx"] = "provider present; the ONNX engine does not choose it yet (rows use CUDA)"
    if _cuda(settings) and "CUDAExecutionProvider" not in providers:
        info["skipped"] = (
            "this onnxruntime has no CUDA provider (carry an onnxruntime-gpu wheel to measure ONNX on the GPU)"
        )
        return info
    model = settings.onnx_model
    if model is None:
        from .builders import save_pipeline, tiny_pipeline

        model = work / "tiny-model"
        if not (model / "model_index.json").is_file():
            save_pipeline(tiny_pipeline(), model)
    if not (model / "model_index.json").is_file():
        info["skipped"] = f"no model for the ONNX rows at {model}"
        return info
    device = "cuda" if _cuda(settings) else "cpu"
    for control in (False, True):
        if control and not (model / "controlnet" / "config.json").is_file():
            continue
        key = "with_controlnet" if control else "without_controlnet"
        info[key] = run_backend_bench(
            model,
            list(settings.steps),
            settings.onnx_repeats,
            settings.warmup,
            size=None,
            control=control,
            device=device,
        )
        section.set("onnx_partial", info)
    return info


def run(section: Section, settings: BenchSettings, work: Path) -> None:
    """The tasks in order of importance; each recorded as it ends (or why it was skipped)."""
    import torch

    if _cuda(settings):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    engines: dict[str, Any] = {}
    first = settings.archs[0]
    modes = settings.compile_modes
    # Eager rows of every shape and ONNX first (cheap, predictable), then compiling (slow, and the
    # likeliest to hit the deadline): the headline shape with each mode, then the others.
    plan: list[tuple[str, str, Any]] = [
        ("eager", f"{arch} eager", lambda arch=arch: eager_task(section, arch, settings, engines))
        for arch in settings.archs
    ]
    plan.append(("onnx", "onnx", lambda: onnx_task(section, settings, work)))
    compiles = [(first, mode) for mode in modes] + [(arch, modes[0]) for arch in settings.archs[1:] if modes]
    plan += [
        (
            "compile",
            f"{arch} compile {mode}",
            lambda arch=arch, mode=mode: compile_task(section, arch, mode, settings, engines),
        )
        for arch, mode in compiles
    ]
    tasks: dict[str, Any] = {}
    section.set("settings", dataclasses.asdict(settings))
    for kind, name, task in plan:
        need = settings.min_left_s.get(kind, 0.0)
        if section.left() < need:
            tasks[name] = {"skipped": f"{section.left():.0f} s left, the task needs {need:.0f} s"}
        else:
            t0 = time.perf_counter()
            try:
                tasks[name] = task()
            except Exception as exc:  # noqa: BLE001 - one task's failure must not lose the others
                import traceback

                tasks[name] = {
                    "error": f"{type(exc).__name__}: {exc}"[:500],
                    "trace": traceback.format_exc()[-2000:],
                }
            tasks[name]["task_s"] = round(time.perf_counter() - t0, 1)
            print(
                f"== {name}: {tasks[name].get('table', tasks[name].get('error', tasks[name].get('skipped', '')))}",
                flush=True,
            )
        section.set("tasks", tasks)
    section.set("summary", summary(tasks))
    if any("error" in t for t in tasks.values()):
        section.set("status", "task errors")


def summary(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per (task, steps, case): total ms, the ratio to stock, peak memory."""
    rows = []
    for name, task in tasks.items():
        for steps, row in (task.get("results") or {}).items():
            stock = (row.get("stock") or {}).get("total_ms")
            for case in ("stock", "ours_new", "ours_cached", "ours_control"):
                if case in row:
                    total = row[case]["total_ms"]
                    rows.append(
                        {
                            "task": name,
                            "steps": steps,
                            "case": case,
                            "total_ms": total,
                            "vs_stock": round(total / stock, 3) if stock else None,
                            "peak_gib": (task.get("memory") or {}).get("peak_allocated_gib"),
                        }
                    )
    return rows

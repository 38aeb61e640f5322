"""`sprint bench`: per-stage latency of our engine against stock `SanaSprintPipeline`, same run.

Cases per step count (median of ``repeats`` after ``warmup`` runs):
- ``ours_new``: a prompt never seen before (the text encoder runs),
- ``ours_cached``: the same prompt again (the prompt-embedding cache answers),
- ``stock``: ``SanaSprintPipeline.__call__`` on the same components, a new prompt each run.
Speed is reported as a ratio to the stock pipeline measured in the same process, because absolute
timings on a shared machine are noisy.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ..core.request import GenerateRequest
from ..engine.torch_backend import TorchEngine

BENCH_WORDS = "red orange yellow green cyan blue purple black circle square triangle cross".split()


def _prompt(k: int) -> str:
    """Distinct prompts (distinct text, so the cache misses), all of similar length."""
    w = BENCH_WORDS
    return f"a {w[k % 8]} {w[8 + (k // 8) % 4]} and a {w[(k // 32) % 8]} {w[8 + (k // 256) % 4]} number {k}"


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 3)


def _machine(engine: TorchEngine) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(engine.device),
    }
    if engine.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(engine.device)
    import diffusers

    info["diffusers"] = diffusers.__version__
    return info


def run_bench(
    model: Path | None,
    arch: str | None,
    device: str | None,
    dtype: str,
    size: tuple[int, int] | None,
    steps: list[int],
    repeats: int,
    warmup: int,
    stock: bool = True,
    text_encoder_layers: int | None = None,
    control: bool = False,
    compile: str = "off",
    compile_backend: str = "inductor",
) -> dict[str, Any]:
    """The bench of ``model`` (or a random-weight ``arch``); with ``compile`` the same engine is
    timed again compiled (`bench_compiled`; ``compile_backend`` "eager" only traces, for tests)
    and the report holds both."""
    t0 = time.perf_counter()
    if arch is None:
        assert model is not None
        engine = TorchEngine(model, device=device, dtype=dtype)
        engine.load()
        label = str(model)
    else:
        from ..export.random_weights import published_pipeline
        from .builders import tiny_pipeline

        pipe = tiny_pipeline() if arch == "tiny" else published_pipeline(arch, text_encoder_layers)
        engine = TorchEngine.from_pipeline(pipe, name=arch, device=device, dtype=dtype)
        label = f"{arch} (random weights)" + (
            f", Gemma-2 cut to {text_encoder_layers} layers" if text_encoder_layers else ""
        )
    load_s = time.perf_counter() - t0
    report = bench_engine(engine, label, size, steps, repeats, warmup, stock, control, load_s)
    if compile != "off":
        compiled = bench_compiled(
            engine, compile, label, size, steps, repeats, warmup, control, report, compile_backend
        )
        report["compiled"] = compiled
        report["table"] += "\n\n" + compiled.get("table", f"compiled: {compiled.get('skipped')}")
    return report


def bench_compiled(
    engine: TorchEngine,
    mode: str,
    label: str,
    size: tuple[int, int] | None,
    steps: list[int],
    repeats: int,
    warmup: int,
    control: bool = False,
    eager: dict[str, Any] | None = None,
    backend: str = "inductor",
) -> dict[str, Any]:
    """``engine`` compiled as the product compiles it (`TorchEngine.enable_compile`): the first
    image apart (it compiles, ``compile_s``), then the timing loop of `bench_engine` (without the
    stock pipeline, which shares the compiled transformer); with ``eager``, that engine's eager
    report from the same run, each case's total as a ratio compiled / eager."""
    in_effect = engine.enable_compile(mode, backend)
    if in_effect == "off":
        return {"skipped": engine.notices[-1] if engine.notices else "the engine could not compile"}
    info = engine.info
    width, height = size if size else (info.default_width, info.default_height)
    t0 = time.perf_counter()
    engine.generate(GenerateRequest(_prompt(-1), steps=steps[0], width=width, height=height))
    compile_s = time.perf_counter() - t0
    engine.prompt_cache.clear()  # the eager rows' prompts come again: new ones must miss the cache
    report = bench_engine(
        engine, f"{label}, torch.compile {in_effect}", size, steps, repeats, warmup, False, control, compile_s
    )
    report["compile_s"] = round(compile_s, 1)
    if eager is not None:
        ratios = {
            n: {
                case: round(row[case]["total_ms"] / eager["results"][n][case]["total_ms"], 3)
                for case in row
                if case.startswith("ours_") and case in eager["results"].get(n, {})
            }
            for n, row in report["results"].items()
        }
        report["ratio_compiled_vs_eager"] = ratios
        lines = [f"first image (compiling): {compile_s:.1f} s", "", "| steps | case | compiled / eager |"]
        lines.append("|---|---|---|")
        lines += [f"| {n} | {case} | {r:.3f}x |" for n, row in ratios.items() for case, r in row.items()]
        report["table"] += "\n\n" + "\n".join(lines)
    return report


def bench_engine(
    engine: TorchEngine,
    label: str,
    size: tuple[int, int] | None,
    steps: list[int],
    repeats: int,
    warmup: int,
    stock: bool = True,
    control: bool = False,
    load_s: float = 0.0,
) -> dict[str, Any]:
    """The timing loop of `run_bench` on an engine built by the caller (the GPU run times the same
    engine eager and compiled)."""
    import numpy as np

    info = engine.info
    if control and engine.controlnet is None:
        # Timing only: a ControlNet of the usual shape (half the blocks) copied from this model.
        from ..engine.controlnet import SprintControlNetModel

        engine.controlnet = SprintControlNetModel.from_transformer(
            engine.transformer, max(1, engine.transformer.config.num_layers // 2)
        ).to(engine.device, engine.dtypes["transformer"])
        label += " + ControlNet (copied, untrained: timing only)"
    width, height = size if size else (info.default_width, info.default_height)
    pipe = engine.pipeline
    k = 0
    results: dict[str, Any] = {}
    for n in steps:
        # The three cases run interleaved, one round each per iteration, so that a busy machine
        # slows them alike and the ratios stay meaningful.
        stage_names = ("encode", "denoise", "decode", "total")
        samples: dict[str, dict[str, list[float]]] = {
            "ours_new": {s: [] for s in stage_names},
            "ours_cached": {s: [] for s in stage_names},
        }
        if control:
            samples["ours_control"] = {s: [] for s in stage_names}
        stock_totals: list[float] = []
        fixed = _prompt(10_000 + n)
        # "Cached" must be a cache hit from its first timed run, warm-up or not (``--warmup 0``).
        engine.encode_prompt(fixed)
        for i in range(warmup + repeats):
            timed = i >= warmup
            for case in samples:
                k += 1
                prompt = _prompt(k) if case == "ours_new" else fixed
                sketch = None
                if case == "ours_control":  # a new sketch every run, as while drawing
                    sketch = np.full((height, width, 3), 255, np.uint8)
                    sketch[height // 4 : 3 * height // 4, (k % (width // 2)) + width // 4] = 0
                r = engine.generate(
                    GenerateRequest(prompt, steps=n, seed=i, width=width, height=height, control_image=sketch)
                )
                if timed:
                    assert r.prompt_cache_hit == (case != "ours_new")
                    for stage in stage_names:
                        samples[case][stage].append(getattr(r.timings, f"{stage}_ms") / 1e3)
            if stock:
                k += 1
                gen = torch.Generator("cpu").manual_seed(i)
                engine._sync()
                start = time.perf_counter()
                with torch.inference_mode():
                    pipe(
                        prompt=_prompt(k),
                        num_inference_steps=n,
                        intermediate_timesteps=1.3 if n == 2 else None,
                        guidance_scale=4.5,
                        height=height,
                        width=width,
                        generator=gen,
                        use_resolution_binning=False,
                        output_type="pil",
                    )
                engine._sync()
                if timed:
                    stock_totals.append(time.perf_counter() - start)
        row: dict[str, Any] = {
            case: {f"{s}_ms": _median_ms(v) for s, v in stages.items()} for case, stages in samples.items()
        }
        if control:
            row["ratio_control_vs_cached"] = round(
                row["ours_control"]["total_ms"] / row["ours_cached"]["total_ms"], 3
            )
        if stock:
            row["stock"] = {"total_ms": _median_ms(stock_totals)}
            row["ratio_new_vs_stock"] = round(row["ours_new"]["total_ms"] / row["stock"]["total_ms"], 3)
            row["ratio_cached_vs_stock"] = round(row["ours_cached"]["total_ms"] / row["stock"]["total_ms"], 3)
        results[str(n)] = row
    report = {
        "model": label,
        "size": [width, height],
        "dtype": info.dtype,
        "repeats": repeats,
        "warmup": warmup,
        "load_s": round(load_s, 2),
        "machine": _machine(engine),
        "results": results,
    }
    report["table"] = format_table(report)
    return report


def format_table(report: dict[str, Any]) -> str:
    w, h = report["size"]
    m = report["machine"]
    head = (
        f"model: {report['model']}  size: {w}x{h}  dtype: {report['dtype']}  device: {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "")
        + f"  median of {report['repeats']} after {report['warmup']} warm-up"
    )
    lines = [
        head,
        "",
        "| steps | case | encode ms | denoise ms | decode ms | total ms | vs stock |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, row in report["results"].items():
        for case in ("ours_new", "ours_cached", "ours_control"):
            if case not in row:
                continue
            c = row[case]
            ratio = row.get(f"ratio_{case.split('_')[1]}_vs_stock")
            lines.append(
                f"| {n} | {case} | {c['encode_ms']:.2f} | {c['denoise_ms']:.2f} | {c['decode_ms']:.2f} | "
                f"{c['total_ms']:.2f} | {'' if ratio is None else f'{ratio:.3f}x'} |"
            )
        if "ratio_control_vs_cached" in row:
            lines.append(
                f"| {n} | ControlNet / same prompt without | | | | | {row['ratio_control_vs_cached']:.3f}x |"
            )
        if "stock" in row:
            lines.append(
                f"| {n} | stock SanaSprintPipeline | | | | {row['stock']['total_ms']:.2f} | 1.000x |"
            )
    return "\n".join(lines)


BACKEND_STAGES = ("encode", "denoise", "decode", "total")


def run_backend_bench(
    model: Path,
    steps: list[int],
    repeats: int,
    warmup: int,
    size: tuple[int, int] | None,
    control: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """ONNX Runtime against PyTorch on the same model, same machine, interleaved run by run; ONNX
    Runtime both through ``session.run`` and through IO binding (`OnnxEngine(io_binding=True)`).
    With ``control`` every request carries a new sketch (the model must ship a ControlNet), and
    ONNX Runtime also runs the same requests without one (``onnx_nosketch``), interleaved, for the
    ControlNet's cost as a ratio in the same run. ``device`` "cuda": PyTorch on CUDA and ONNX
    Runtime on its GPU providers."""
    import numpy as np

    from ..core.errors import SprintError
    from ..engine.onnx_backend import OnnxEngine
    from ..export.onnx_export import export_model

    if control and not (Path(model) / "controlnet" / "config.json").is_file():
        raise SprintError(f"--control with --backend onnx needs a model with a ControlNet: {model} has none")
    t0 = time.perf_counter()
    export = export_model(model)
    export_s = time.perf_counter() - t0
    torch_engine = TorchEngine(model, device=device)
    engines: dict[str, Any] = {
        "torch": torch_engine,
        "onnx": OnnxEngine(export, device=device, io_binding=False),
        "onnx_iobinding": OnnxEngine(export, device=device, io_binding=True),
    }
    for engine in engines.values():
        info = engine.load()
    if control:
        engines["onnx_nosketch"] = engines["onnx"]  # the same engine, asked without the sketch
    width, height = size if size else (info.default_width, info.default_height)
    results: dict[str, Any] = {}
    k = 0
    for n in steps:
        totals: dict[str, dict[str, list[float]]] = {
            name: {stage: [] for stage in BACKEND_STAGES} for name in engines
        }
        names = list(engines)
        for i in range(warmup + repeats):
            # A different engine goes first each round: a run right after PyTorch's can be slowed
            # by its idle OpenMP threads, and that must not always fall on the same engine.
            for name in names[i % len(names) :] + names[: i % len(names)]:
                engine = engines[name]
                k += 1
                sketch = None
                if control and name != "onnx_nosketch":  # a new sketch every run, as while drawing
                    sketch = np.full((height, width, 3), 255, np.uint8)
                    sketch[height // 4 : 3 * height // 4, (k % (width // 2)) + width // 4] = 0
                r = engine.generate(
                    GenerateRequest(
                        _prompt(k), steps=n, seed=i, width=width, height=height, control_image=sketch
                    )
                )
                if i >= warmup:
                    for stage in BACKEND_STAGES:
                        totals[name][stage].append(getattr(r.timings, f"{stage}_ms") / 1e3)
        row: dict[str, Any] = {
            name: {f"{stage}_ms": _median_ms(v) for stage, v in by_stage.items()}
            for name, by_stage in totals.items()
        }
        row["ratio_onnx_vs_torch"] = round(row["onnx"]["total_ms"] / row["torch"]["total_ms"], 3)
        row["ratio_iobinding_vs_run"] = round(row["onnx_iobinding"]["total_ms"] / row["onnx"]["total_ms"], 3)
        if control:
            row["ratio_onnx_control_vs_plain"] = round(
                row["onnx"]["total_ms"] / row["onnx_nosketch"]["total_ms"], 3
            )
        results[str(n)] = row
    lines = [
        f"model: {model}  size: {width}x{height}  {device}  median of {repeats} after {warmup} warm-up  "
        f"(export {export_s:.1f} s, cached after the first)" + ("  new sketch per image" if control else ""),
        "",
        "| steps | PyTorch ms | ONNX Runtime ms | ONNX / PyTorch | ORT IO binding ms | IO binding / run |",
        "|---|---|---|---|---|---|",
    ]
    for n_steps, row in results.items():
        lines.append(
            f"| {n_steps} | {row['torch']['total_ms']:.2f} | {row['onnx']['total_ms']:.2f} | "
            f"{row['ratio_onnx_vs_torch']:.3f}x | {row['onnx_iobinding']['total_ms']:.2f} | "
            f"{row['ratio_iobinding_vs_run']:.3f}x |"
        )
    if control:
        lines += [
            "",
            "| steps | ONNX Runtime, no sketch ms | with a new sketch ms | ControlNet / plain |",
            "|---|---|---|---|",
        ]
        for n_steps, row in results.items():
            lines.append(
                f"| {n_steps} | {row['onnx_nosketch']['total_ms']:.2f} | {row['onnx']['total_ms']:.2f} | "
                f"{row['ratio_onnx_control_vs_plain']:.3f}x |"
            )
    lines += [
        "",
        "Stages (median ms; encode = prompt, denoise = sketch encoding + steps, decode = DC-AE):",
        "",
        "| steps | engine | encode | denoise | decode | total |",
        "|---|---|---|---|---|---|",
    ]
    for n_steps, row in results.items():
        for name in engines:
            t = row[name]
            lines.append(
                f"| {n_steps} | {name} | {t['encode_ms']:.2f} | {t['denoise_ms']:.2f} | "
                f"{t['decode_ms']:.2f} | {t['total_ms']:.2f} |"
            )
    return {
        "model": str(model),
        "size": [width, height],
        "control": control,
        "export_s": round(export_s, 2),
        "results": results,
        "machine": _machine(torch_engine),
        "table": "\n".join(lines),
    }

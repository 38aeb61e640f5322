"""Measure the weight-free graph path (issue #12) on a published architecture with random weights.

- `write_random_checkpoint`: a diffusers model folder of ``arch`` (the published configs, or the
  reduced real architecture) whose safetensors hold random bf16 weights, as the published
  checkpoints are stored; written tensor by tensor, so memory stays small.
- `measure_binding`: bind that folder to its graphs in a fresh process where torch cannot be
  imported; wall time and the process's peak resident memory (CPU rows of docs/BENCHMARKS.md).
- `bound_graph_rows`: the GPU rows for the prepared GPU run (helper ``gpu``, issue #18): graphs
  exported here, a random checkpoint bound to them, then per execution provider (TensorRT-RTX,
  CUDA) the per-stage medians and peak VRAM of `OnnxEngine` at 1024 px, against `TorchEngine` on
  CUDA with the same weights, prompt, seed and steps (image difference reported).

    python -m sprint_desktop.devtools.bound_bench bind --arch sana-sprint-0.6b --work /tmp/bind-bench
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.paths import project_root

REDUCED = "reduced"


def write_random_checkpoint(arch: str, folder: Path, seed: int = 0) -> Path:
    """A model folder of ``arch`` (``sana-sprint-0.6b``, ``sana-sprint-1.6b`` or ``reduced``) with
    random bf16 weights; returns it. Needs torch and diffusers (configs and tokenizer only)."""
    if (folder / "model_index.json").is_file():
        return folder
    if arch == REDUCED:
        from ..export.reduced import save_reduced

        return save_reduced(folder, seed=seed)
    from ..export.graph_only import _parameters_on_meta
    from ..export.random_weights import published_pipeline

    with _parameters_on_meta():
        pipeline = published_pipeline(arch)
    work = folder.with_name(f".{folder.name}.partial")
    work.mkdir(parents=True, exist_ok=True)
    pipeline.save_config(work)
    pipeline.tokenizer.save_pretrained(work / "tokenizer")
    pipeline.scheduler.save_pretrained(work / "scheduler")
    pipeline.text_encoder.config.save_pretrained(work / "text_encoder")
    pipeline.transformer.save_config(work / "transformer")
    pipeline.vae.save_config(work / "vae")
    rng = np.random.default_rng(seed)
    block = _bf16(rng.standard_normal(1 << 22).astype(np.float32) * np.float32(0.02))
    for name, file in (
        ("text_encoder", "model.safetensors"),
        ("transformer", "diffusion_pytorch_model.safetensors"),
        ("vae", "diffusion_pytorch_model.safetensors"),
    ):
        shapes = {k: tuple(v.shape) for k, v in getattr(pipeline, name).state_dict().items()}
        _write_safetensors(work / name / file, shapes, block, rng)
    work.replace(folder)
    return folder


def _bf16(values: np.ndarray) -> np.ndarray:
    return (values.view(np.uint32) >> 16).astype(np.uint16)


def _write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]], block: np.ndarray, rng: Any) -> None:
    """bf16 tensors whose values are slices of ``block`` at random offsets (cheap to make)."""
    header: dict[str, Any] = {}
    offset = 0
    for key, shape in shapes.items():
        n = int(np.prod(shape, dtype=np.int64)) * 2
        header[key] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(blob)) + blob)
        for shape in shapes.values():
            left = int(np.prod(shape, dtype=np.int64))
            while left:
                start = int(rng.integers(0, block.size // 2))
                piece = block[start : start + min(left, block.size - start)]
                out.write(piece.tobytes())
                left -= piece.size


BIND_WITHOUT_TORCH = """
import json, sys, threading, time
sys.modules["torch"] = None
from pathlib import Path
from sprint_desktop.export.binder import bind
model, library, root, precision = sys.argv[1:5]
peaks = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
done = threading.Event()
def sample():  # anonymous memory vs mapped file pages (Linux), every 0.1 s; VmHWM: the exact peak
    while True:
        for line in open("/proc/self/status"):
            name, _, value = line.partition(":")
            if name in peaks:
                peaks[name] = max(peaks[name], int(value.split()[0]) * 1024)
        if done.wait(0.1):
            return
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start = time.perf_counter()
bound = bind(model, precision, root=Path(root), dirs=[Path(library)])
seconds = time.perf_counter() - start
done.set()
sampler.join()
# Not getrusage's ru_maxrss: Linux keeps the parent's RSS at fork in it across exec (the parent
# holds the placeholder-weights pipeline), while VmHWM is this program's own peak.
size = sum(p.stat().st_size for p in Path(bound).iterdir())
print(json.dumps({"bound": str(bound), "seconds": seconds, "peak_rss_bytes": peaks["VmHWM"],
                  "peak_rss_anon_bytes": peaks["RssAnon"], "peak_rss_file_bytes": peaks["RssFile"],
                  "bound_bytes": size}))
"""


def measure_binding(model: Path, library: Path, root: Path, precision: str) -> dict[str, Any]:
    """Bind in a fresh process where torch cannot be imported: seconds, peak RSS, bound size."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project_root()), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", BIND_WITHOUT_TORCH, str(model), str(library), str(root), precision],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"binding failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["source_bytes"] = sum(p.stat().st_size for p in model.rglob("*.safetensors"))
    return result


def export_graphs_for(arch: str, library: Path, precision: str, model: Path | None = None) -> list[Path]:
    from ..export.graph_only import export_arch_graphs, export_model_graphs

    if arch == REDUCED:
        assert model is not None
        return export_model_graphs(model, library, precision=precision)
    return export_arch_graphs(arch, library, precision=precision)


class VramPeak:
    """Peak used GPU memory (MiB) from nvidia-smi, sampled every 0.1 s while the block runs: ONNX
    Runtime's CUDA allocations are not visible to torch.cuda."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _used(self) -> float | None:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            return float(out.split()[0])
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            used = self._used()
            if used is not None:
                self.samples.append(used)
            self._stop.wait(0.1)

    def __enter__(self) -> VramPeak:
        self.base = self._used()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float | None:
        return max(self.samples) if self.samples else None


def _stage_medians(engine: Any, request: Any, repeats: int) -> tuple[dict[str, float], np.ndarray]:
    """Median ms per stage over ``repeats`` runs after one warm-up; the prompt cache is emptied
    before each run, so the text encoder is timed too."""
    from dataclasses import asdict

    runs = []
    for _ in range(repeats + 1):
        engine.prompt_cache.clear()
        runs.append(engine.generate(request))
    timings = [asdict(r.timings) for r in runs[1:]]
    return {k: float(np.median([t[k] for t in timings])) for k in timings[0]}, runs[-1].image


def bound_graph_rows(
    arch: str,
    work: Path,
    providers: tuple[str, ...] = ("tensorrt-rtx", "cuda"),
    size: int = 1024,
    steps: tuple[int, ...] = (1, 2, 4),
    repeats: int = 5,
    precision: str = "fp16",
    torch_baseline: bool = True,
    device: str = "cuda",
    record: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The GPU rows of issue #12 for the GPU-run script (helper ``gpu``, issue #18): ``arch`` at
    ``size`` px through weight-free graphs bound to a random bf16 checkpoint, on each execution
    provider in ``providers`` ("tensorrt-rtx", "cuda", or "cpu" for a dry run), against PyTorch on
    ``device`` with the same weights. Returns a JSON-able dict: binding time / memory, and per
    provider and step count the per-stage medians (s), peak VRAM (MiB, nvidia-smi) and the largest
    pixel difference to PyTorch; a provider that cannot run gets its error instead of rows.
    ``record`` is called with the result so far after each stage (a run stopped at its deadline
    keeps what it measured)."""
    from ..core.request import GenerateRequest
    from ..engine.onnx_backend import OnnxEngine

    work.mkdir(parents=True, exist_ok=True)
    model = write_random_checkpoint(arch, work / "model" / arch)
    library = work / "graphs"
    start = time.perf_counter()
    export_graphs_for(arch, library, precision, model if arch == REDUCED else None)
    result: dict[str, Any] = {
        "arch": arch,
        "size": size,
        "precision": precision,
        "export_s": time.perf_counter() - start,
    }
    keep = record or (lambda _: None)
    keep(result)
    result["binding"] = measure_binding(model, library, work / "bound", precision)
    keep(result)
    bound = Path(result["binding"]["bound"])
    prompt = "a photo of a red fox in the snow, detailed fur"
    width = height = size
    reference: dict[int, np.ndarray] = {}
    if torch_baseline:
        import torch

        from ..engine.torch_backend import TorchEngine

        engine = TorchEngine(model, device=device, dtype="auto" if device == "cuda" else "fp32")
        engine.load()
        rows = {}
        for n in steps:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            request = GenerateRequest(prompt, seed=0, steps=n, width=width, height=height)
            stages, reference[n] = _stage_medians(engine, request, repeats)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
            rows[str(n)] = {"stages_s": stages, "vram_peak_mib": peak}
        result["pytorch"] = {"device": device, "rows": rows}
        keep(result)
        engine.close()
        del engine
        if device == "cuda":
            torch.cuda.empty_cache()
    for provider in providers:
        entry: dict[str, Any] = {}
        try:
            with VramPeak() as vram:
                ort_engine = OnnxEngine(
                    bound, device="cpu" if provider == "cpu" else "cuda", execution_provider=provider
                )
                load_start = time.perf_counter()
                info = ort_engine.load()
                entry["load_s"] = time.perf_counter() - load_start
                entry["device"] = info.device
                entry["notices"] = list(ort_engine.notices)
                rows = {}
                for n in steps:
                    request = GenerateRequest(prompt, seed=0, steps=n, width=width, height=height)
                    stages, image = _stage_medians(ort_engine, request, repeats)
                    row: dict[str, Any] = {"stages_s": stages}
                    if n in reference:
                        row["max_pixel_diff_vs_pytorch"] = int(
                            np.abs(image.astype(int) - reference[n].astype(int)).max()
                        )
                    rows[str(n)] = row
                entry["rows"] = rows
                ort_engine.close()
            entry["vram_peak_mib"] = vram.peak_mib
            entry["vram_before_mib"] = vram.base
        except Exception as exc:  # noqa: BLE001 - recorded; the next provider still runs
            entry["error"] = f"{type(exc).__name__}: {exc}"
        result[provider] = entry
        keep(result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="binding time and memory of a random-weights checkpoint")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bind")
    b.add_argument("--arch", default="sana-sprint-0.6b")
    b.add_argument("--work", type=Path, required=True)
    b.add_argument("--precision", default="fp16")
    g = sub.add_parser("gpu-rows")
    g.add_argument("--arch", default="sana-sprint-0.6b")
    g.add_argument("--work", type=Path, required=True)
    g.add_argument("--size", type=int, default=1024)
    t = sub.add_parser("text-encoder-precision")
    t.add_argument("--work", type=Path, required=True)
    t.add_argument("--layers", type=int, default=2)
    c = sub.add_parser("trace-check")
    c.add_argument("--arch", default="sana-sprint-0.6b")
    c.add_argument("--work", type=Path, required=True)
    c.add_argument("--graphs", type=Path, required=True, help="a graph library with the arch's fp32 set")
    c.add_argument("--latent", type=int, default=32)
    d = sub.add_parser("decoder-precision")
    d.add_argument("--work", type=Path, required=True)
    d.add_argument("--latent", type=int, default=16)
    args = parser.parse_args(argv)
    if args.command == "bind":
        start = time.perf_counter()
        model = write_random_checkpoint(args.arch, args.work / "model" / args.arch)
        made = time.perf_counter() - start
        start = time.perf_counter()
        export_graphs_for(args.arch, args.work / "graphs", args.precision, model)
        exported = time.perf_counter() - start
        out = measure_binding(model, args.work / "graphs", args.work / "bound", args.precision)
        out.update(checkpoint_s=made, export_s=exported, arch=args.arch, precision=args.precision)
    elif args.command == "text-encoder-precision":
        out = text_encoder_precision(args.work, layers=args.layers)
    elif args.command == "trace-check":
        out = trace_check(args.arch, args.work, args.graphs, latent=args.latent)
    elif args.command == "decoder-precision":
        out = decoder_precision(args.work, latent=args.latent)
    else:
        out = bound_graph_rows(args.arch, args.work, size=args.size)
    print(json.dumps(out, indent=1))
    return 0


def text_encoder_precision(work: Path, layers: int = 2, vocab: int = 4096, seed: int = 0) -> dict[str, Any]:
    """The Gemma-2 text encoder's graph in fp32 and in fp16 against PyTorch fp32: the real widths
    (2304 hidden, 9216 MLP, 8 heads of 256, soft-capping) with ``layers`` layers and a ``vocab``-row
    embedding (the rest of the published 26 layers and 256000 rows only scale the size), random
    weights (transformers' own initialisation), bound and run like the app does. Returns the max
    absolute and relative error over the real tokens and the weights' size of each."""
    import torch
    from transformers import Gemma2Config, Gemma2Model

    from ..export.binder import bind
    from ..export.graph_only import export_model_graphs
    from ..export.reduced import reduced_pipeline
    from ..formats.architectures import GEMMA2_2B

    model = work / "model" / f"gemma2-{layers}l"
    if not (model / "model_index.json").is_file():
        pipeline = reduced_pipeline(seed, controlnet=False)
        del pipeline.controlnet
        torch.manual_seed(seed)
        config: dict[str, Any] = {
            **GEMMA2_2B,
            "num_hidden_layers": layers,
            "vocab_size": vocab,
            "max_position_embeddings": 8192,
        }
        pipeline.text_encoder = Gemma2Model(
            Gemma2Config(**config, pad_token_id=0, bos_token_id=2, eos_token_id=1)
        )
        pipeline.register_modules(text_encoder=pipeline.text_encoder)
        pipeline.save_pretrained(model, safe_serialization=True)
    ids = torch.randint(4, vocab, (1, 300), generator=torch.Generator().manual_seed(1))
    encoder = Gemma2Model.from_pretrained(model / "text_encoder").eval()
    with torch.inference_mode():
        ref = encoder(ids, attention_mask=torch.ones_like(ids))[0].numpy()
    out: dict[str, Any] = {"layers": layers, "vocab": vocab, "reference_max_abs": float(np.abs(ref).max())}

    for precision in ("fp32", "fp16-islands", "fp16-all"):
        library = work / f"graphs-{precision}"
        export_model_graphs(model, library, precision=precision, check=False, only=("text_encoder",))
        engine_dir = bind(model, precision, root=work / "bound", dirs=[library], components=("text_encoder",))
        import onnxruntime as ort

        graph = next(engine_dir.glob("text_encoder-*.onnx"))
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        feeds = {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy())}
        got = session.run(None, feeds)[0].astype(np.float32)
        err = np.abs(got - ref)
        out[precision] = {
            "max_abs_error": float(err.max()),
            "max_rel_error": float(err.max() / np.abs(ref).max()),
            "finite": bool(np.isfinite(got).all()),
            "weights_bytes": sum(f.stat().st_size for f in engine_dir.glob("text_encoder-*.weights")),
        }
    return out


def trace_check(arch: str, work: Path, graphs: Path, latent: int = 32, seed: int = 0) -> dict[str, Any]:
    """The published ``arch``'s fp32 transformer step graph (traced at `graph_only.ARCH_TRACE_LATENT`)
    bound to a random checkpoint and run by ONNX Runtime at ``latent`` x ``latent`` (32: 1024 px),
    against PyTorch with the same weights and inputs: the largest difference of ``x0`` and ``x_next``."""
    import onnxruntime as ort
    import torch
    from diffusers import SanaTransformer2DModel

    from ..export.binder import bind
    from ..export.onnx_export import _TrigFlowStep

    model = write_random_checkpoint(arch, work / "model" / arch, seed=seed)
    bound = bind(model, "fp32", root=work / "bound", dirs=[graphs], components=("transformer",))
    graph = next(bound.glob("transformer-*.onnx"))
    transformer = SanaTransformer2DModel.from_pretrained(model / "transformer", torch_dtype=torch.float32)
    step = _TrigFlowStep(transformer.eval(), 0.5, 0)
    rng = np.random.default_rng(seed)
    c, seq = int(transformer.config.in_channels), 300
    width = int(transformer.config.caption_channels)
    mask = np.zeros((1, seq), np.int64)
    mask[:, :7] = 1
    feeds = {
        "x_t": rng.standard_normal((1, c, latent, latent)).astype(np.float32),
        "t": np.array([1.2], np.float32),
        "encoder_hidden_states": rng.standard_normal((1, seq, width)).astype(np.float32),
        "encoder_attention_mask": mask,
        "guidance": np.array([4.5], np.float32),
        "z_next": rng.standard_normal((1, c, latent, latent)).astype(np.float32),
        "t_next": np.array([0.6], np.float32),
    }
    got = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.inference_mode():
        ref = step(*(torch.from_numpy(feeds[k]) for k in feeds))
    out: dict[str, Any] = {"arch": arch, "latent": latent, "graph": graph.name}
    for name, a, b in zip(("x0", "x_next"), got, ref, strict=True):
        out[name] = {
            "max_abs_diff": float(np.abs(a - b.numpy()).max()),
            "max_abs": float(np.abs(b.numpy()).max()),
        }
    return out


def decoder_precision(work: Path, latent: int = 16, seed: int = 0) -> dict[str, Any]:
    """The DC-AE decoder's graph in fp16 against the same graph in fp32, both run by ONNX Runtime
    (CPU) on the same latents: the largest pixel difference (of 255) and the largest difference
    before clipping, for (a) the embedded model's trained DC-AE on the latents of its own sample
    images and (b) the published DC-AE f32c32 config with diffusers' random initialisation on
    ``latent`` x ``latent`` random latents. Graphs are traced at a 4 x 4 latent (any size runs)."""
    import torch
    from diffusers import AutoencoderDC
    from PIL import Image

    from ..formats.architectures import DCAE_F32C32

    work.mkdir(parents=True, exist_ok=True)
    embedded = project_root() / "models" / "sprint-shapes"
    trained = AutoencoderDC.from_pretrained(embedded / "vae").eval()
    with Image.open(embedded / "samples-1step.png") as im:
        pixels = torch.from_numpy(np.asarray(im.convert("RGB"), np.float32) / 127.5 - 1)
    m = 2 ** (len(trained.config.encoder_block_out_channels) - 1)
    h, w = (pixels.shape[0] // m) * m, (pixels.shape[1] // m) * m
    with torch.inference_mode():
        trained_latents = trained.encode(pixels[:h, :w].permute(2, 0, 1)[None]).latent.numpy()
    torch.manual_seed(seed)
    published: Any = AutoencoderDC(**DCAE_F32C32)
    published.eval()
    scale: Any = DCAE_F32C32["scaling_factor"]
    random_latents = np.random.default_rng(seed).standard_normal((1, 32, latent, latent)).astype(
        np.float32
    ) / float(scale)
    out: dict[str, Any] = {}
    for name, vae, latents in (
        ("embedded (trained)", trained, trained_latents),
        ("published f32c32 (random)", published, random_latents),
    ):
        out[name] = {
            "latent_shape": list(latents.shape),
            **_decoder_error(vae, latents, work / name.split()[0]),
        }
    return out


def _decoder_error(vae: Any, latents: np.ndarray, folder: Path) -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    from ..export.onnx_export import OPSET, _Decoder, normalise_transposes

    images = {}
    sizes = {}
    for dtype in (torch.float32, torch.float16):
        name = str(dtype).removeprefix("torch.")
        graph = folder / name / "decoder.onnx"
        graph.parent.mkdir(parents=True, exist_ok=True)
        module = _Decoder(vae.to(dtype)).eval()
        with torch.no_grad():
            torch.onnx.export(
                module,
                (torch.randn(1, latents.shape[1], 4, 4, dtype=dtype),),
                str(graph),
                dynamo=False,
                opset_version=OPSET,
                input_names=["latent"],
                output_names=["image"],
                dynamic_axes={"latent": {0: "b", 2: "h", 3: "w"}, "image": {0: "b", 2: "H", 3: "W"}},
                external_data=True,
            )
        normalise_transposes(graph)
        sizes[name] = sum(f.stat().st_size for f in graph.parent.iterdir())
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        feed = latents.astype(np.float16 if dtype == torch.float16 else np.float32)
        images[name] = session.run(None, {"latent": feed})[0].astype(np.float32)
    vae.to(torch.float32)
    ref, half = images["float32"], images["float16"]
    pixels = {k: np.round(np.clip(v / 2 + 0.5, 0, 1) * 255) for k, v in images.items()}
    clipped = np.clip(ref / 2 + 0.5, 0, 1)
    return {
        "max_abs_error": float(np.abs(half - ref).max()),
        "reference_max_abs": float(np.abs(ref).max()),
        "finite": bool(np.isfinite(half).all()),
        "max_pixel_diff_of_255": int(np.abs(pixels["float16"] - pixels["float32"]).max()),
        "share_of_pixels_clipped": float(((clipped == 0) | (clipped == 1)).mean()),
        "graph_bytes": sizes,
    }


if __name__ == "__main__":
    sys.exit(main())

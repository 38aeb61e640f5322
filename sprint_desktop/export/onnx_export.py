"""Export a SANA-Sprint pipeline folder to ONNX: text encoder, transformer, DC-AE decoder and
encoder, each with dynamic batch / resolution / sequence axes, checked against PyTorch on two
shapes after export (a mismatch, NaN or inf fails the export).

We export with ``torch.onnx.export(dynamo=False, opset 18)``: optimum-onnx cannot export SanaSprint
(no ``guidance`` input) and pins old transformers; the dynamo exporter's optimiser strips the
``+ eps`` of linear attention (NaN) unless told not to.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import SprintError
from ..engine.model_folder import inspect_model_folder
from .cache import cache_root as default_cache_root
from .cache import file_sha256, is_complete, model_fingerprint

OPSET = 18
EXPORTER_VERSION = 1
COMPONENTS = ("text_encoder", "transformer", "vae_decoder", "vae_encoder")
ProgressFn = Callable[[str, int, int], None]


class _TextEncoder(torch.nn.Module):
    def __init__(self, m: Any) -> None:
        super().__init__()
        self.m = m

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.m(input_ids, attention_mask=attention_mask)[0]


class _Transformer(torch.nn.Module):
    def __init__(self, m: Any) -> None:
        super().__init__()
        self.m = m

    def forward(
        self,
        hidden_states: Any,
        encoder_hidden_states: Any,
        encoder_attention_mask: Any,
        timestep: Any,
        guidance: Any,
    ) -> torch.Tensor:
        return self.m(
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            guidance=guidance,
            timestep=timestep,
            return_dict=False,
        )[0]


class _Decoder(torch.nn.Module):
    def __init__(self, m: Any) -> None:
        super().__init__()
        self.m = m

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.m.decode(latent, return_dict=False)[0]


class _Encoder(torch.nn.Module):
    def __init__(self, m: Any) -> None:
        super().__init__()
        self.m = m

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.m.encode(image).latent


def model_key(model_path: Path, precision: str) -> str:
    """Identity of an export: the model's fingerprint, precision, opset and library versions."""
    import diffusers
    import transformers

    versions = f"{precision}|{OPSET}|{EXPORTER_VERSION}|{torch.__version__}|{diffusers.__version__}|{transformers.__version__}"
    return hashlib.sha256((model_fingerprint(model_path) + versions).encode()).hexdigest()[:24]


def export_dir_for(model_path: Path, precision: str, cache_root: Path | None = None) -> Path:
    return (
        cache_root or default_cache_root()
    ) / f"{model_path.name}-{precision}-{model_key(model_path, precision)}"


def export_model(
    model_path: str | Path,
    precision: str = "fp32",
    cache_root: Path | None = None,
    progress: ProgressFn | None = None,
    force: bool = False,
) -> Path:
    """Export (or reuse the cached export of) the model; return the export folder."""
    from ..engine.torch_backend import TorchEngine

    if precision not in ("fp32", "fp16"):
        raise SprintError(f"precision must be fp32 or fp16, got {precision!r}")
    folder = inspect_model_folder(model_path).path
    if (folder / "controlnet" / "config.json").is_file():
        raise SprintError(
            "this model ships a ControlNet, which the ONNX export does not cover yet: use --backend torch"
        )
    target = export_dir_for(folder, precision, cache_root)
    if not force and is_complete(target, verify_checksums=True):
        return target
    if target.exists():
        shutil.rmtree(target)  # partial or corrupt: rebuild
    engine = TorchEngine(folder, device="cpu", dtype="fp32", prefix_cache=False)
    info = engine.load()
    if precision == "fp16":
        for m in (engine.transformer, engine.text_encoder):
            m.to(torch.float16)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        steps = _export_all(engine, work, precision, progress)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            src = folder / "tokenizer" / name
            if src.is_file():
                shutil.copy2(src, work / name)
        manifest = {
            "model": str(folder),
            "fingerprint": model_fingerprint(folder),
            "model_name": info.name,
            "precision": precision,
            "opset": OPSET,
            "torch": torch.__version__,
            "files": [
                {
                    "component": c,
                    "file": f,
                    "size": (work / f).stat().st_size,
                    "sha256": file_sha256(work / f),
                }
                for c, f in steps
            ],
            "chi_lines": engine.chi_lines,
            "max_sequence_length": engine.max_sequence_length,
            "sigma_d": engine.sigma_d,
            "guidance_embeds_scale": float(engine.transformer.config.get("guidance_embeds_scale", 0.1)),
            "vae_scale_factor": engine.vae_scale_factor,
            "scaling_factor": float(engine.vae.config.scaling_factor),
            "info": {
                k: getattr(info, k)
                for k in (
                    "default_width",
                    "default_height",
                    "size_multiple",
                    "latent_channels",
                    "max_sequence_length",
                )
            },
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
        work.replace(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _export_all(engine: Any, out: Path, precision: str, progress: ProgressFn | None) -> list[tuple[str, str]]:
    info = engine.info
    c, m = info.latent_channels, engine.vae_scale_factor
    h = w = max(1, info.default_height // m)
    seq = engine.max_sequence_length
    half = precision == "fp16"
    fdt = torch.float16 if half else torch.float32
    te_dim = engine.text_encoder.config.hidden_size
    jobs: list[tuple[str, torch.nn.Module, tuple, list[str], dict, Callable[[int, int, int], tuple]]] = [
        (
            "text_encoder",
            _TextEncoder(engine.text_encoder),
            (torch.ones(1, seq + 4, dtype=torch.int64), torch.ones(1, seq + 4, dtype=torch.int64)),
            ["input_ids", "attention_mask"],
            {
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            lambda b, hh, ww: (torch.randint(4, 20, (b, 7 + hh)), torch.ones(b, 7 + hh, dtype=torch.int64)),
        ),
        (
            "transformer",
            _Transformer(engine.transformer),
            (
                torch.randn(1, c, h, w, dtype=fdt),
                torch.randn(1, seq, te_dim, dtype=fdt),
                torch.ones(1, seq, dtype=torch.int64),
                torch.tensor([0.5]),
                torch.tensor([0.45]),
            ),
            ["hidden_states", "encoder_hidden_states", "encoder_attention_mask", "timestep", "guidance"],
            {
                "hidden_states": {0: "batch", 2: "height", 3: "width"},
                "encoder_hidden_states": {0: "batch", 1: "sequence"},
                "encoder_attention_mask": {0: "batch", 1: "sequence"},
                "timestep": {0: "batch"},
                "guidance": {0: "batch"},
                "sample": {0: "batch", 2: "height", 3: "width"},
            },
            lambda b, hh, ww: (
                torch.randn(b, c, hh, ww, dtype=fdt),
                torch.randn(b, seq, te_dim, dtype=fdt),
                torch.cat(
                    [torch.ones(b, 3, dtype=torch.int64), torch.zeros(b, seq - 3, dtype=torch.int64)], 1
                ),
                torch.rand(b),
                torch.full((b,), 0.45),
            ),
        ),
        (
            "vae_decoder",
            _Decoder(engine.vae),
            (torch.randn(1, c, h, w),),
            ["latent"],
            {
                "latent": {0: "batch", 2: "height", 3: "width"},
                "image": {0: "batch", 2: "image_height", 3: "image_width"},
            },
            lambda b, hh, ww: (torch.randn(b, c, hh, ww),),
        ),
        (
            "vae_encoder",
            _Encoder(engine.vae),
            (torch.rand(1, 3, h * m, w * m) * 2 - 1,),
            ["image"],
            {
                "image": {0: "batch", 2: "height", 3: "width"},
                "latent": {0: "batch", 2: "latent_height", 3: "latent_width"},
            },
            lambda b, hh, ww: (torch.rand(b, 3, hh * m, ww * m) * 2 - 1,),
        ),
    ]
    output_names = {
        "text_encoder": "last_hidden_state",
        "transformer": "sample",
        "vae_decoder": "image",
        "vae_encoder": "latent",
    }
    done = []
    for i, (name, module, args, inputs, axes, golden_inputs) in enumerate(jobs):
        if progress:
            progress(name, i, len(jobs))
        file = f"{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(
                module.eval(),
                args,
                str(out / file),
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=[output_names[name]],
                dynamic_axes=axes,
                external_data=_needs_external(module),
            )
        normalise_transposes(out / file)
        golden_check(
            out / file,
            module,
            inputs,
            [golden_inputs(1, h, w), golden_inputs(2, h + 2, w * 2 if w < 64 else w)],
            tol=5e-2 if precision == "fp16" else 1e-3,
        )
        done.append((name, file))
    if progress:
        progress("done", len(jobs), len(jobs))
    return done


def normalise_transposes(path: Path) -> None:
    """Rewrite negative axes in Transpose ``perm`` attributes (the TorchScript exporter keeps the
    ``movedim(1, -1)`` of the DC-AE's norms as -1, which ONNX Runtime rejects)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    changed = False
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    for node in nodes:
        if node.op_type != "Transpose":
            continue
        for attr in node.attribute:
            if attr.name == "perm" and any(p < 0 for p in attr.ints):
                rank = len(attr.ints)
                fixed = [p + rank if p < 0 else p for p in attr.ints]
                del attr.ints[:]
                attr.ints.extend(fixed)
                changed = True
    if changed:
        onnx.save(model, str(path))


def _needs_external(module: torch.nn.Module) -> bool:
    return sum(p.numel() * p.element_size() for p in module.parameters()) > 1.8e9


def golden_check(
    path: Path, module: torch.nn.Module, names: list[str], cases: list[tuple], tol: float
) -> None:
    """Compare ONNX Runtime with PyTorch on each case; raise SprintError on a mismatch, NaN or inf."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for case in cases:
        with torch.no_grad():
            ref = module(*case).float().numpy()
        out = session.run(None, {n: t.numpy() for n, t in zip(names, case, strict=True)})[0].astype(
            np.float32
        )
        if not np.isfinite(out).all():
            raise SprintError(
                f"export check failed: {path.name} produced NaN or inf for shapes {[tuple(t.shape) for t in case]}"
            )
        err = float(np.abs(out - ref).max() / max(1.0, float(np.abs(ref).max())))
        if out.shape != ref.shape or err > tol:
            raise SprintError(
                f"export check failed: {path.name} differs from PyTorch by {err:.2e} (limit {tol:.0e})"
            )

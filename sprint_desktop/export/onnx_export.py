"""Export a SANA-Sprint pipeline folder to ONNX: text encoder, ControlNet (when the model has one),
transformer, DC-AE decoder and encoder, each with dynamic batch / resolution / sequence axes,
checked against PyTorch on two shapes after export (a mismatch, NaN or inf fails the export).

The transformer graph is one whole TrigFlow step (`_TrigFlowStep`): it takes the TrigFlow latent
``x_t`` and time ``t`` and returns ``x0`` and the re-noised latent for the next time, so the ONNX
Runtime backend keeps latents on the device between steps (IO binding) and runs one graph per step.
With a ControlNet, it exports a separate ``controlnet`` graph that returns the residuals and the
transformer step takes them as inputs (``residual_0``...). Why two graphs and not one combined
graph: a request without a sketch then runs the transformer alone (fed zero residuals, which add
exactly nothing) instead of paying for the ControlNet's blocks at scale 0 or for a second copy of
the transformer's weights; the residuals go from one session to the other on the device.

We export with ``torch.onnx.export(dynamo=False, opset 18)``: optimum-onnx cannot export SanaSprint
(no ``guidance`` input) and pins old transformers; the dynamo exporter's optimiser strips the
``+ eps`` of linear attention (NaN) unless told not to.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import SprintError
from ..core.trigflow import (
    flow_input_scale,
    flow_time_from_trig,
    renoise,
    trigflow_from_flow_velocity,
    x0_from_trigflow,
)
from ..formats.layout import EXPORT_FORMAT
from ..formats.model_folder import inspect_model_folder
from .cache import cache_root as default_cache_root
from .cache import file_sha256, is_complete, model_content_fingerprint, model_fingerprint
from .graph_library import used_residuals
from .work_dirs import make_work_dir, publish, remove_stale

OPSET = 18
EXPORTER_VERSION = EXPORT_FORMAT
COMPONENTS = ("text_encoder", "controlnet", "transformer", "vae_decoder", "vae_encoder")
ProgressFn = Callable[[str, int, int], None]


class _TextEncoder(torch.nn.Module):
    def __init__(self, m: Any) -> None:
        super().__init__()
        self.m = m

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.m(input_ids, attention_mask=attention_mask)[0]


class _FlowNetwork(torch.nn.Module):
    """A flow-trained network (the transformer, the ControlNet) called at a TrigFlow latent ``x_t``
    and time ``t``; ``n_residuals``: how many ControlNet residuals the transformer takes."""

    def __init__(self, m: Any, sigma_d: float, n_residuals: int) -> None:
        super().__init__()
        self.m = m
        self.sigma_d = sigma_d
        self.n_residuals = n_residuals
        self.dtype = next(m.parameters()).dtype

    def flow_inputs(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow time ``s`` (B,) and the network's input ``x_flow`` (paper Eq. 4), exactly as
        `TorchEngine.denoise` computes them."""
        s = flow_time_from_trig(t)
        return s, (x_t / self.sigma_d) * flow_input_scale(s.view(-1, 1, 1, 1))


class _TrigFlowStep(_FlowNetwork):
    """One sampling step around the flow-trained transformer (`TorchEngine.denoise`'s loop body):
    ``x0 = cos t x_t - sin t sigma_d F(x_t, t)`` and ``x_next = cos t' x0 + sin t' sigma_d z_next``.
    x_t, z_next (B, C, h, w) fp32; t, t_next (B,); residuals (B, h*w, D) from the ControlNet graph."""

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        guidance: torch.Tensor,
        z_next: torch.Tensor,
        t_next: torch.Tensor,
        *residuals: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s, x_flow = self.flow_inputs(x_t, t)
        v = self.m(
            x_flow.to(self.dtype),
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            guidance=guidance,
            timestep=s,
            controlnet_block_samples=residuals if residuals else None,
            return_dict=False,
        )[0]
        F = trigflow_from_flow_velocity(x_flow, v, s.view(-1, 1, 1, 1)).float()
        x0 = x0_from_trigflow(x_t, F, t.view(-1, 1, 1, 1), self.sigma_d)
        return x0, renoise(x0, z_next, t_next.view(-1, 1, 1, 1), self.sigma_d)


class _ControlNet(_FlowNetwork):
    """The ControlNet's residuals for one step from the same ``x_t``, ``t`` as `_TrigFlowStep`;
    controlnet_cond (B, C, h, w) is the sketch latent / sigma_d, conditioning_scale a 0-d tensor.
    Only the residuals the transformer uses are outputs, so the export drops the blocks that feed
    none (the PyTorch backend computes them and discards them)."""

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        guidance: torch.Tensor,
        controlnet_cond: torch.Tensor,
        conditioning_scale: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        s, x_flow = self.flow_inputs(x_t, t)
        residuals = self.m(
            x_flow.to(self.dtype),
            encoder_hidden_states,
            s,
            controlnet_cond,
            guidance=guidance,
            encoder_attention_mask=encoder_attention_mask,
            conditioning_scale=conditioning_scale,
        )
        return tuple(residuals[: self.n_residuals])


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


WORK_PREFIX = ".export-"
"""Work folders of exports under way (or killed) in the cache: never taken for an export."""


def model_key(model_path: Path, precision: str) -> str:
    """Identity of an export: the model's fingerprint, precision, opset and library versions."""
    import diffusers
    import transformers

    versions = f"|{precision}|{OPSET}|{EXPORTER_VERSION}|{torch.__version__}|{diffusers.__version__}|{transformers.__version__}"
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
    target = export_dir_for(folder, precision, cache_root)
    remove_stale(target.parent, WORK_PREFIX)  # work folders of exports killed or crashed before
    if not force and is_complete(target, verify_checksums=True):
        return target
    engine = TorchEngine(folder, device="cpu", dtype="fp32", prefix_cache=False)
    info = engine.load()
    if precision == "fp16":
        for m in (engine.transformer, engine.text_encoder, engine.controlnet):
            if m is not None:
                m.to(torch.float16)
    work = make_work_dir(target.parent, WORK_PREFIX)
    try:
        steps = _export_all(engine, work, precision, progress)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            src = folder / "tokenizer" / name
            if src.is_file():
                shutil.copy2(src, work / name)
        manifest = {
            "format": EXPORT_FORMAT,
            "model": str(folder),
            "fingerprint": model_fingerprint(folder),
            "content_fingerprint": model_content_fingerprint(folder),  # survives copies: see cache.py
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
            "patch_size": int(engine.transformer.config.patch_size),
            "control_mode": info.control_mode,
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
        # A target another process finished meanwhile is kept (it may be in use); a partial or
        # corrupt one, or any with ``force``, is replaced.
        publish(work, target, lambda t: not force and is_complete(t, verify_checksums=True), WORK_PREFIX)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


Job = tuple[str, torch.nn.Module, tuple, list[str], list[str], dict, Callable[[int, int, int], tuple]]
"""name, module, export args, input names, output names, dynamic axes, golden inputs(batch, h, w)."""


def own_latent(engine: Any) -> int:
    """The latent side of the model's default size."""
    return max(1, int(engine.info.default_height) // int(engine.vae_scale_factor))


def export_jobs(engine: Any, precision: str, trace_latent: int | None = None) -> tuple[list[Job], int, int]:
    """The graphs to export for a loaded `TorchEngine` (ControlNet only when it has one), and the
    latent height and width the golden checks start from: the model's default size, or
    ``trace_latent`` x ``trace_latent`` (the graphs' sizes are dynamic either way; a small trace
    keeps the published architectures' fp16 trace short, PyTorch's fp16 convolutions on a CPU being
    slow: 0.6B at 1024 px took ~25 s of CPU per transformer block)."""
    info = engine.info
    c, m = info.latent_channels, engine.vae_scale_factor
    h = w = trace_latent or own_latent(engine)
    seq = engine.max_sequence_length
    half = precision.startswith("fp16")
    fdt = torch.float16 if half else torch.float32
    te_dim = engine.text_encoder.config.hidden_size
    sigma_d = float(engine.sigma_d)
    p = int(engine.transformer.config.patch_size)
    inner = engine.transformer.config.num_attention_heads * engine.transformer.config.attention_head_dim
    n_res = 0
    if engine.controlnet is not None:
        n_res = used_residuals(engine.transformer.config.num_layers, engine.controlnet.config.num_layers)
        if n_res < 1:
            raise SprintError("the transformer has one block, so it uses none of the ControlNet's residuals")
    res_names = [f"residual_{j}" for j in range(n_res)]
    res_axes = {name: {0: "batch", 1: "tokens"} for name in res_names}
    latent_axes = {0: "batch", 2: "height", 3: "width"}

    def step_common(b: int, hh: int, ww: int) -> tuple:
        """x_t, t, embeds, mask (3 real tokens), guidance: the inputs both step graphs share."""
        return (
            torch.randn(b, c, hh, ww),
            torch.rand(b) * 1.5708,
            torch.randn(b, seq, te_dim, dtype=fdt),
            torch.cat([torch.ones(b, 3, dtype=torch.int64), torch.zeros(b, seq - 3, dtype=torch.int64)], 1),
            torch.full((b,), 0.45),
        )

    def step_inputs(b: int, hh: int, ww: int) -> tuple:
        residuals = tuple(torch.randn(b, hh * ww // (p * p), inner, dtype=fdt) for _ in res_names)
        return (*step_common(b, hh, ww), torch.randn(b, c, hh, ww), torch.rand(b) * 1.3, *residuals)

    def controlnet_inputs(b: int, hh: int, ww: int) -> tuple:
        return (*step_common(b, hh, ww), torch.randn(b, c, hh, ww, dtype=fdt), torch.tensor(0.7))

    step_names = ["x_t", "t", "encoder_hidden_states", "encoder_attention_mask", "guidance"]
    step_axes = {
        "x_t": latent_axes,
        "t": {0: "batch"},
        "encoder_hidden_states": {0: "batch", 1: "sequence"},
        "encoder_attention_mask": {0: "batch", 1: "sequence"},
        "guidance": {0: "batch"},
    }
    jobs: list[Job] = [
        (
            "text_encoder",
            _TextEncoder(engine.text_encoder),
            (torch.ones(1, seq + 4, dtype=torch.int64), torch.ones(1, seq + 4, dtype=torch.int64)),
            ["input_ids", "attention_mask"],
            ["last_hidden_state"],
            {
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            lambda b, hh, ww: (torch.randint(4, 20, (b, 7 + hh)), torch.ones(b, 7 + hh, dtype=torch.int64)),
        ),
        (
            "transformer",
            _TrigFlowStep(engine.transformer, sigma_d, n_res),
            step_inputs(1, h, w),
            [*step_names, "z_next", "t_next", *res_names],
            ["x0", "x_next"],
            {
                **step_axes,
                "z_next": latent_axes,
                "t_next": {0: "batch"},
                **res_axes,
                "x0": latent_axes,
                "x_next": latent_axes,
            },
            step_inputs,
        ),
        (
            "vae_decoder",
            _Decoder(engine.vae),
            (torch.randn(1, c, h, w),),
            ["latent"],
            ["image"],
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
            ["latent"],
            {
                "image": {0: "batch", 2: "height", 3: "width"},
                "latent": {0: "batch", 2: "latent_height", 3: "latent_width"},
            },
            lambda b, hh, ww: (torch.rand(b, 3, hh * m, ww * m) * 2 - 1,),
        ),
    ]
    if n_res:
        jobs.insert(
            1,
            (
                "controlnet",
                _ControlNet(engine.controlnet, sigma_d, n_res),
                controlnet_inputs(1, h, w),
                [*step_names, "controlnet_cond", "conditioning_scale"],
                res_names,
                {**step_axes, "controlnet_cond": latent_axes, **res_axes},
                controlnet_inputs,
            ),
        )
    return jobs, h, w


def _export_all(engine: Any, out: Path, precision: str, progress: ProgressFn | None) -> list[tuple[str, str]]:
    jobs, h, w = export_jobs(engine, precision)
    done = []
    for i, (name, module, args, inputs, outputs, axes, golden_inputs) in enumerate(jobs):
        if progress:
            progress(name, i, len(jobs))
        file = f"{name}.onnx"
        with torch.no_grad(), traced_pos_embed(module):
            torch.onnx.export(
                module.eval(),
                args,
                str(out / file),
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=outputs,
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


def _patch_embed_any_size(self: Any, latent: torch.Tensor) -> torch.Tensor:
    """diffusers' `PatchEmbed.forward` (no ``pos_embed_max_size``) that always computes the sincos
    positions from the input's size. Stock, it compares the size with the one it was built for in
    Python, so a trace keeps the stored table of the export shape as a constant and the graph
    fails (or is wrong) at any other resolution; here the positions are ops on the traced size."""
    from diffusers.models.embeddings import get_2d_sincos_pos_embed

    height, width = latent.shape[-2] // self.patch_size, latent.shape[-1] // self.patch_size
    latent = self.proj(latent)
    if self.flatten:
        latent = latent.flatten(2).transpose(1, 2)
    if self.layer_norm:
        latent = self.norm(latent)
    pos_embed = get_2d_sincos_pos_embed(
        embed_dim=self.pos_embed.shape[-1],
        grid_size=(height, width),
        base_size=self.base_size,
        interpolation_scale=self.interpolation_scale,
        device=latent.device,
        output_type="pt",
    )
    return (latent + pos_embed.float().unsqueeze(0)).to(latent.dtype)


@contextmanager
def traced_pos_embed(module: torch.nn.Module) -> Iterator[None]:
    """While exporting ``module``: its sincos `PatchEmbed`s (a transformer or ControlNet built with
    ``interpolation_scale``, as the embedded model's are) compute their positions in the graph, so
    the export keeps a dynamic resolution. Eager PyTorch (the golden check) is left as it is."""
    from diffusers.models.embeddings import PatchEmbed

    patched = [
        m
        for m in module.modules()
        if isinstance(m, PatchEmbed) and m.pos_embed is not None and not m.pos_embed_max_size
    ]
    for m in patched:
        m.forward = types.MethodType(_patch_embed_any_size, m)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in patched:
            del m.forward


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
    """Compare ONNX Runtime with PyTorch on each case, every output; raise SprintError on a
    mismatch, NaN or inf."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for case in cases:
        with torch.no_grad():
            refs = module(*case)
        refs = refs if isinstance(refs, (tuple, list)) else (refs,)
        outs = session.run(None, {n: t.numpy() for n, t in zip(names, case, strict=True)})
        if len(outs) != len(refs):
            raise SprintError(
                f"export check failed: {path.name} has {len(outs)} outputs, PyTorch {len(refs)}"
            )
        for ref_t, raw in zip(refs, outs, strict=True):
            ref = ref_t.float().numpy()
            out = raw.astype(np.float32)
            if not np.isfinite(out).all():
                raise SprintError(
                    f"export check failed: {path.name} produced NaN or inf for shapes "
                    f"{[tuple(t.shape) for t in case]}"
                )
            err = float(np.abs(out - ref).max() / max(1.0, float(np.abs(ref).max())))
            if out.shape != ref.shape or err > tol:
                raise SprintError(
                    f"export check failed: {path.name} differs from PyTorch by {err:.2e} (limit {tol:.0e})"
                )

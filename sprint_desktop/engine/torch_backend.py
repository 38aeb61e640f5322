"""The PyTorch backend: SANA-Sprint sampling with our own loop over the diffusers components.

Why our own loop and not ``SanaSprintPipeline.__call__``: it lets us cache prompt embeddings,
draw device-independent seeded noise, cancel between steps, time each stage, and accept custom
timesteps for every step count (the stock pipeline raises a TypeError on ``timesteps=`` and needs
``intermediate_timesteps=None`` for 1, 3 or 4 steps). `tests/engine/test_parity.py` checks the
loop against the stock pipeline to 1e-5.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.cancel import CancelToken
from ..core.errors import InvalidRequestError, ModelLoadError, SprintError
from ..core.request import GenerateRequest, GenerateResult
from ..core.sketch import control_pixels
from ..core.trigflow import (
    SIGMA_D,
    flow_input_scale,
    flow_time_from_trig,
    plan,
    renoise,
    trigflow_from_flow_velocity,
    x0_from_trigflow,
)
from ..formats.model_folder import (
    check_weights_match,
    inspect_model_folder,
    model_defaults,
    read_model_settings,
    safetensors_keys,
)
from . import compiling
from .base import Engine, ModelInfo, ProgressCallback
from .text_cache import LRUCache

log = logging.getLogger(__name__)

DEFAULT_MAX_SEQUENCE_LENGTH = 300
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_complex_human_instruction() -> list[str]:
    """The instruction prefix the published model was trained with (diffusers' own default)."""
    from diffusers import SanaSprintPipeline

    default = inspect.signature(SanaSprintPipeline.__call__).parameters["complex_human_instruction"].default
    return list(default)


def choose_device(device: str | None) -> torch.device:
    """``None`` picks CUDA when present, else the CPU; asking for a missing CUDA is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ModelLoadError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("CUDA was requested but no CUDA device is available; use --device cpu")
    return torch.device(device)


def choose_dtypes(device: torch.device, dtype: str = "auto") -> dict[str, torch.dtype]:
    """Per-component dtypes: fp32 on the CPU; bf16 (or fp16 without bf16) for the transformer and
    text encoder on CUDA, and bf16 (or fp32) for the DC-AE, which overflows in fp16."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ModelLoadError(f"dtype must be auto, fp32, fp16 or bf16, got {dtype!r}")
        chosen = DTYPES[dtype]
        vae = torch.float32 if chosen == torch.float16 else chosen
        return {"transformer": chosen, "text_encoder": chosen, "vae": vae}
    if device.type != "cuda":
        return {"transformer": torch.float32, "text_encoder": torch.float32, "vae": torch.float32}
    half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    vae = torch.bfloat16 if half == torch.bfloat16 else torch.float32
    return {"transformer": half, "text_encoder": half, "vae": vae}


class TorchEngine(Engine):
    """SANA-Sprint on PyTorch (CUDA or CPU) over a diffusers-layout model folder.

    Args:
        model_path: folder with ``model_index.json`` and the five components.
        device: "cpu", "cuda" or None (CUDA when available).
        dtype: "auto" (see `choose_dtypes`), "fp32", "fp16" or "bf16".
        prompt_cache_size: prompt embeddings kept (LRU); 0 disables the cache.
        complex_human_instruction: prefix the prompt with the instruction the published model
            expects; None reads the model folder's ``sprint_desktop.json`` (default: on).
        max_sequence_length: prompt tokens kept after the instruction; None reads the folder's file.
        prefix_cache: run the causal text encoder over the fixed instruction prefix once and reuse
            its key/value cache, so a new prompt costs only its own tokens (see `_encode_ids`).
        compile: ``torch.compile`` the transformer, the DC-AE decoder and the ControlNet on load
            (`enable_compile`): None or "off" (eager), "default" (Inductor) or "reduce-overhead"
            (Inductor and CUDA graphs; plain Inductor off CUDA). The first image of each shape is
            slow (it compiles); one that cannot compile runs eagerly with a notice.
        compile_backend: the ``torch.compile`` backend ("inductor"; others for tests and dry runs).
    """

    backend_name = "torch"

    def __init__(
        self,
        model_path: str | Path,
        device: str | None = None,
        dtype: str = "auto",
        prompt_cache_size: int = 32,
        complex_human_instruction: bool | None = None,
        max_sequence_length: int | None = None,
        prefix_cache: bool = True,
        compile: str | None = None,
        compile_backend: str | Callable[..., Any] = "inductor",
    ) -> None:
        super().__init__()
        try:
            self.compile_request = compiling.normalize_mode(compile)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
        self.compile_backend = compile_backend
        self.compile_mode = "off"
        """The mode in effect: "off" until compiled, and again after compiling failed."""
        self._compiled: list[torch.nn.Module] = []
        self.model_path = Path(model_path)
        self.prefix_cache_enabled = prefix_cache
        self._prefix_states: dict[int, tuple[torch.Tensor, Any]] = {}
        self._device_arg = device
        self._dtype_arg = dtype
        self._use_chi_arg = complex_human_instruction
        self._max_len_arg = max_sequence_length
        self.prompt_cache: LRUCache[tuple[torch.Tensor, torch.Tensor, bool]] = LRUCache(prompt_cache_size)
        self.control_cache: LRUCache[torch.Tensor] = LRUCache(8)
        self.control_embed_cache: LRUCache[torch.Tensor] = LRUCache(8)
        self.pipeline: Any = None
        self.controlnet: Any = None
        self._info: ModelInfo | None = None
        self.text_encoder_calls = 0

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def from_pipeline(cls, pipeline: Any, name: str = "in-memory", **kwargs: Any) -> TorchEngine:
        """Wrap an already-built `SanaSprintPipeline` (benchmarks of random-weight architectures)."""
        engine = cls(Path(name), **kwargs)
        engine._setup(pipeline, settings={})
        return engine

    def load(self) -> ModelInfo:
        if self._info is not None:
            return self._info
        folder = inspect_model_folder(self.model_path)
        settings = read_model_settings(folder.path)
        device = choose_device(self._device_arg)
        dtypes = choose_dtypes(device, self._dtype_arg)
        import diffusers
        import transformers
        from diffusers import SanaSprintPipeline

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        try:
            pipeline = SanaSprintPipeline.from_pretrained(
                folder.path,
                use_safetensors=True,
                local_files_only=True,
                **_dtype_kwarg({**dtypes, "default": torch.float32}),
            )
            for name in ("transformer", "text_encoder", "vae"):
                module = getattr(pipeline, name)
                check_weights_match(name, safetensors_keys(folder.path / name), set(module.state_dict()))
                check_finite_weights(name, folder.path / name, module)
            self.controlnet = self._load_controlnet(folder.path / "controlnet", dtypes["transformer"])
            self._setup(pipeline, settings, device=device, dtypes=dtypes)
        except ModelLoadError:
            raise
        except torch.OutOfMemoryError:
            raise ModelLoadError(f"not enough memory to load {folder.path} on {device}") from None
        except Exception as exc:  # diffusers/transformers raise many kinds; the user needs one message
            raise ModelLoadError(f"could not load the model in {folder.path}: {exc}") from exc
        assert self._info is not None
        return self._info

    @staticmethod
    def _load_controlnet(folder: Path, dtype: torch.dtype) -> Any:
        """The model's Sprint ControlNet if it ships one (``controlnet/``), checked key by key."""
        if not (folder / "config.json").is_file():
            return None
        from ..formats.model_folder import check_component_weights
        from .controlnet import SprintControlNetModel

        check_component_weights(folder)
        controlnet = SprintControlNetModel.from_pretrained(
            folder, use_safetensors=True, local_files_only=True, **_dtype_kwarg(dtype)
        )
        check_weights_match("controlnet", safetensors_keys(folder), set(controlnet.state_dict()))
        check_finite_weights("controlnet", folder, controlnet)
        return controlnet

    def _setup(
        self,
        pipeline: Any,
        settings: dict[str, Any],
        device: torch.device | None = None,
        dtypes: dict[str, torch.dtype] | None = None,
    ) -> None:
        device = device if device is not None else choose_device(self._device_arg)
        dtypes = dtypes if dtypes is not None else choose_dtypes(device, self._dtype_arg)
        for name in ("transformer", "text_encoder", "vae"):
            module = getattr(pipeline, name)
            if module.dtype != dtypes[name]:
                module.to(dtype=dtypes[name])
            module.to(device=device).eval().requires_grad_(False)
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline
        self.device = device
        self.controlnet = getattr(self, "controlnet", None)
        if self.controlnet is not None:
            self.controlnet.to(device=device).eval().requires_grad_(False)
        self.dtypes = dtypes
        self.tokenizer = pipeline.tokenizer
        self.text_encoder = pipeline.text_encoder
        self.transformer = pipeline.transformer
        self.vae = pipeline.vae
        self.sigma_d = float(pipeline.scheduler.config.get("sigma_data", SIGMA_D))
        use_chi = self._use_chi_arg
        if use_chi is None:
            use_chi = bool(settings.get("complex_human_instruction", True))
        self.chi_lines = default_complex_human_instruction() if use_chi else []
        self.max_sequence_length = int(
            self._max_len_arg or settings.get("max_sequence_length", DEFAULT_MAX_SEQUENCE_LENGTH)
        )
        self._prefix_states.clear()
        self._chi_ids: list[int] = []
        if self.chi_lines:
            self._chi_prompt = "\n".join(self.chi_lines)
            self._chi_ids = list(self.tokenizer.encode(self._chi_prompt))
            self._chi_tokens = len(self._chi_ids)
        forward_params = inspect.signature(self.text_encoder.forward).parameters
        # transformers 5 renamed `past_key_values` to `cache`.
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"
        self.prefix_cache_active = (
            self.prefix_cache_enabled and bool(self._chi_ids) and self._cache_kw in forward_params
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.encoder_block_out_channels) - 1)
        patch = int(self.transformer.config.patch_size)
        multiple = self.vae_scale_factor * patch
        default_side = int(self.transformer.config.sample_size) * self.vae_scale_factor
        defaults = model_defaults(settings)
        width, height = defaults.size or (default_side, default_side)
        self._info = ModelInfo(
            name=str(settings.get("name", self.model_path.name)),
            path=str(self.model_path),
            backend=self.backend_name,
            device=str(device),
            dtype=str(dtypes["transformer"]).replace("torch.", ""),
            default_width=width,
            default_height=height,
            size_multiple=multiple,
            latent_channels=int(self.transformer.config.in_channels),
            max_sequence_length=self.max_sequence_length,
            control_mode="controlnet" if self.controlnet is not None else "img2img",
            default_steps=defaults.steps,
            refine_steps=defaults.refine_steps,
        )
        if self.compile_request != "off":
            self.enable_compile(self.compile_request)

    # --------------------------------------------------------------------------------- compiling
    def enable_compile(self, mode: str, backend: str | Callable[..., Any] | None = None) -> str:
        """``torch.compile`` the transformer, the DC-AE decoder and the ControlNet (if loaded) in
        place, with Inductor's caches in the app's cache folder; "off" makes them eager again.
        The compile itself happens on the next image. Returns the mode in effect: "off" when
        compiling cannot work here, with the reason in `notices` (the engine runs eagerly)."""
        mode = compiling.normalize_mode(mode)
        backend = backend or self.compile_backend
        self._disable_compile()
        if mode == "off":
            return "off"
        compiling.use_persistent_cache()  # first: importing Inductor's modules sets its own default
        problem = compiling.compile_problem(self.device.type, backend)
        if problem is None:
            effective = compiling.effective_mode(mode, self.device.type)
            try:
                for module in self._compile_targets():
                    compiling.compile_module(module, effective, backend)
                    self._compiled.append(module)
            except Exception as exc:  # noqa: BLE001 - e.g. an unknown backend: one line, then eager
                self._disable_compile()
                problem = compiling.failure_line(exc)
            else:
                self._set_compile_mode(effective)
                return effective
        self.notices.append(f"the model runs without torch.compile (slower): {problem}")
        return "off"

    def _compile_targets(self) -> list[torch.nn.Module]:
        targets = [self.transformer, self.vae.decoder]
        return [*targets, self.controlnet] if self.controlnet is not None else targets

    def _disable_compile(self) -> None:
        """Make the compiled modules eager again and drop Dynamo's compiled code (and with it the
        CUDA graphs' memory), so that a later mode or backend cannot reuse it."""
        if self._compiled:
            for module in self._compiled:
                compiling.uncompile(module)
            self._compiled.clear()
            torch._dynamo.reset()
        self._set_compile_mode("off")

    def _set_compile_mode(self, mode: str) -> None:
        self.compile_mode = mode
        if self._info is not None:
            self._info = dataclasses.replace(self._info, compile_mode=mode)

    def close(self) -> None:
        self._disable_compile()
        self.pipeline = self.text_encoder = self.transformer = self.vae = self.controlnet = None
        self.notices.clear()
        self.prompt_cache.clear()
        self.control_cache.clear()
        self.control_embed_cache.clear()
        self._prefix_states.clear()
        self._info = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _run_guarded(
        self,
        request: GenerateRequest,
        noise: Any,
        progress: ProgressCallback | None,
        cancel: CancelToken,
        request_id: int,
    ) -> GenerateResult:
        try:
            with torch.inference_mode():
                return self._run(request, noise, progress, cancel, request_id)
        except torch.OutOfMemoryError:
            raise SprintError(
                f"out of memory on {self.device} at {request.width}x{request.height} with "
                f"{request.batch_size} image(s): try a smaller size or fewer images"
            ) from None
        except compiling.compile_errors() as exc:
            if not self._compiled:
                raise
            # Compiling failed on this image (Inductor's compiler, Triton, an unsupported
            # operation): the same request again, eagerly, and eager from now on.
            log.info("torch.compile failed; running eagerly", exc_info=True)
            self._disable_compile()
            self.notices.append(
                f"compiling the model failed, so it runs without torch.compile (slower): "
                f"{compiling.failure_line(exc)}"
            )
            return self._run_guarded(request, noise, progress, cancel, request_id)

    def _all_finite(self, latents: Any) -> bool:
        return bool(torch.isfinite(latents).all())

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor, bool, bool]:
        """Embeddings ``(1, L, D)`` and mask ``(1, L)`` of ``prompt``; cached by text and settings.

        Matches the stock pipeline: lower-cased and stripped text, the complex-human-instruction
        prefix, padding to ``len(prefix) + max_sequence_length - 2`` tokens, then the first token
        plus the last ``max_sequence_length - 1``. Returns (embeds, mask, cache_hit, truncated).
        """
        self.load()
        text = prompt.lower().strip()
        key = (text, tuple(self.chi_lines), self.max_sequence_length, str(self.dtypes["transformer"]))
        cached = self.prompt_cache.get(key)
        if cached is not None:
            embeds, mask, truncated = cached
            return embeds, mask, True, truncated
        tokenizer = self.tokenizer
        tokenizer.padding_side = "right"
        if self.chi_lines:
            text = self._chi_prompt + text
            max_length = self._chi_tokens + self.max_sequence_length - 2
        else:
            max_length = self.max_sequence_length
        inputs = tokenizer(
            [text],
            padding="max_length",
            max_length=max_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
            return_overflowing_tokens=False,
        )
        truncated = len(tokenizer.encode(text, verbose=False)) > max_length  # we say it, not transformers
        ids = inputs.input_ids.to(self.device)
        mask = inputs.attention_mask.to(self.device)
        self.text_encoder_calls += 1
        embeds = self._encode_ids(ids, mask).to(self.dtypes["transformer"])
        keep = [0, *range(-self.max_sequence_length + 1, 0)]
        embeds, mask = embeds[:, keep], mask[:, keep]
        self.prompt_cache.put(key, (embeds, mask, truncated))
        return embeds, mask, False, truncated

    def _encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Text-encoder hidden states ``(1, N, D)`` for right-padded ``ids``.

        With the prefix cache, the instruction tokens shared with the cached prefix are not run
        again: the encoder is causal, so their states and keys/values do not depend on the prompt.
        Padding positions are left at zero: the transformer masks them out of cross-attention.
        """
        n_real = int(mask.sum())
        contiguous = bool(mask[0, :n_real].all())
        if not (self.prefix_cache_active and contiguous and ids.shape[0] == 1):
            return self.text_encoder(ids, attention_mask=mask)[0]
        real = ids[0, :n_real].tolist()
        shared = 0
        for a, b in zip(real, self._chi_ids, strict=False):
            if a != b:
                break
            shared += 1
        shared = min(shared, n_real - 1)  # at least one token must run to produce new states
        if shared < 1:
            return self.text_encoder(ids, attention_mask=mask)[0]
        state = self._prefix_states.get(shared)
        if state is None:
            prefix = ids[:, :shared]
            out = self.text_encoder(prefix, attention_mask=torch.ones_like(prefix), use_cache=True)
            state = (out.last_hidden_state, out.past_key_values)
            self._prefix_states[shared] = state
        prefix_hidden, prefix_cache = state
        rest = self.text_encoder(
            ids[:, shared:n_real],
            attention_mask=torch.ones((1, n_real), dtype=mask.dtype, device=mask.device),
            use_cache=True,
            **{self._cache_kw: copy.deepcopy(prefix_cache)},
        ).last_hidden_state
        hidden = rest.new_zeros((1, ids.shape[1], rest.shape[-1]))
        hidden[:, :shared] = prefix_hidden
        hidden[:, shared:n_real] = rest
        return hidden

    def denoise(
        self,
        request: GenerateRequest,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        noise: np.ndarray | torch.Tensor,
        report: Any = None,
        check: Any = None,
    ) -> torch.Tensor:
        """1-4 TrigFlow steps; returns the clean latent ``x0 / sigma_d`` of shape ``(B, C, h, w)``."""
        steps, batch = request.steps, request.batch_size
        z = torch.as_tensor(noise, dtype=torch.float32).to(self.device)
        expected = (steps, batch, *self.latent_shape(request))
        if tuple(z.shape) != expected:
            raise InvalidRequestError(f"noise must have shape {expected}, got {tuple(z.shape)}")
        sigma_d = self.sigma_d
        schedule = plan(request, has_controlnet=self.controlnet is not None)
        start_x0 = None
        control = None
        if schedule.controlnet:
            # ControlNet: the sketch conditions every step.
            control = self.control_embedding(request).expand(batch, -1, -1)
        elif schedule.from_sketch:
            # No ControlNet: sketch-guided image-to-image from the sketch's latent re-noised.
            start_x0 = self.encode_control(request)
        times = torch.tensor(schedule.times, dtype=torch.float32, device=self.device)
        tdtype = self.dtypes["transformer"]
        embeds = embeds.expand(batch, -1, -1).to(tdtype)
        mask = mask.expand(batch, -1)
        guidance_scale = float(self.transformer.config.get("guidance_embeds_scale", 0.1))
        guidance = torch.full((batch,), float(request.guidance), device=self.device).to(embeds.dtype)
        guidance = guidance * guidance_scale
        if start_x0 is None:
            x = z[0] * sigma_d  # x at t_max: sigma_d * unit noise
        else:
            x = renoise(start_x0.expand(batch, -1, -1, -1), z[0], times[0], sigma_d)
        x0 = x
        for i in range(steps):
            if check is not None:
                check()
            if report is not None:
                report("denoise", i, steps)
            t, t_next = times[i], times[i + 1]
            s = flow_time_from_trig(t.expand(batch))  # flow time fed to the flow-trained transformer
            s4 = s.view(-1, 1, 1, 1)
            x_flow = (x / sigma_d) * flow_input_scale(s4)
            residuals = None
            if control is not None:
                residuals = self.controlnet(
                    x_flow.to(tdtype),
                    embeds,
                    s,
                    guidance=guidance,
                    encoder_attention_mask=mask,
                    conditioning_scale=float(request.control_scale),
                    cond_embedding=control,
                )
            v = self.transformer(
                x_flow.to(tdtype),
                encoder_hidden_states=embeds,
                encoder_attention_mask=mask,
                guidance=guidance,
                timestep=s,
                controlnet_block_samples=residuals,
                return_dict=False,
            )[0]
            F = trigflow_from_flow_velocity(x_flow, v, s4).float()
            x0 = x0_from_trigflow(x, F, t, sigma_d)
            if i + 1 < steps:
                x = renoise(x0, z[i + 1], t_next, sigma_d)
        if report is not None:
            report("denoise", steps, steps)
        return x0 / sigma_d

    def control_embedding(self, request: GenerateRequest) -> torch.Tensor:
        """The ControlNet's conditioning of the request's sketch, ``(1, h*w, D)``: the sketch's
        latent (`encode_control`) through the ControlNet's condition embedding. Computed once per
        sketch (and size), not per step or per request: cached by the sketch's content."""
        key = (request.control_digest, request.width, request.height)
        cached = self.control_embed_cache.get(key)
        if cached is not None:
            return cached
        latent = (self.encode_control(request) / self.sigma_d).to(self.dtypes["transformer"])
        embedding = self.controlnet.embed_condition(latent)
        self.control_embed_cache.put(key, embedding)
        return embedding

    def encode_control(self, request: GenerateRequest) -> torch.Tensor:
        """The control image as a model-space clean latent ``(1, C, h, w)``, cached by content."""
        assert request.control_image is not None and request.width and request.height
        key = (request.control_digest, request.width, request.height)
        cached = self.control_cache.get(key)
        if cached is not None:
            return cached
        pixels = torch.from_numpy(control_pixels(request.control_image, request.width, request.height))
        latent = self.vae.encode(pixels.to(self.device, self.dtypes["vae"])).latent.float()
        # decode() divides by sigma_d and by the VAE's scaling factor; encoding inverts both.
        x0 = latent * float(self.vae.config.scaling_factor) * self.sigma_d
        self.control_cache.put(key, x0)
        return x0

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """DC-AE decode to float images in [0, 1], shape ``(B, H, W, 3)``."""
        scaling = float(self.vae.config.scaling_factor)
        image = self.vae.decode(latents.to(self.dtypes["vae"]) / scaling, return_dict=False)[0]
        image = (image.float() / 2 + 0.5).clamp(0, 1)
        return image.permute(0, 2, 3, 1).cpu().numpy()


FINITE_CHUNK = 1 << 24
"""Elements checked at a time, so the check's temporary mask stays small (16 MB) for any tensor."""


def check_finite_weights(component: str, folder: Path, module: torch.nn.Module) -> None:
    """`ModelLoadError` naming the tensors of ``module`` that hold NaN or Inf (a damaged file gives a
    black image otherwise). One pass over the weights as loaded, in chunks."""
    bad = []
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        if not flat.is_floating_point():
            continue
        for start in range(0, flat.numel(), FINITE_CHUNK):
            if not bool(torch.isfinite(flat[start : start + FINITE_CHUNK]).all()):
                bad.append(name)
                break
    if bad:
        raise ModelLoadError(
            f"the {component} weights in {folder} hold NaN or infinite values ({len(bad)} tensor(s), e.g. "
            f"{bad[0]}): the file is damaged; download the model again"
        )


def _dtype_kwarg(value: Any) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument: diffusers 0.40 renamed ``torch_dtype`` to ``dtype``."""
    import diffusers

    return {("dtype" if _version_tuple(diffusers.__version__) >= (0, 40) else "torch_dtype"): value}


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)

"""`sprint generate`: images from a prompt or a file of prompts."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import InvalidRequestError, SprintError
from .common import (
    EXIT_ERROR,
    EXIT_OK,
    UsageError,
    add_compile_arg,
    add_model_args,
    parse_size,
    parse_timesteps,
    resolve_model,
)


def register(sub: Any) -> None:
    gen = sub.add_parser("generate", help="generate images from a prompt or a file of prompts")
    gen.add_argument("prompt", nargs="?", help="what to draw")
    gen.add_argument("--prompts-file", type=Path, help="one prompt per line; writes DIR/0000.png, ...")
    gen.add_argument("--out-dir", type=Path, help="output folder for --prompts-file")
    gen.add_argument("-o", "--output", type=Path, help="output PNG for a single prompt")
    add_model_args(gen, backends=("auto", "torch", "onnx"))
    add_compile_arg(
        gen,
        "PyTorch: torch.compile the model, off (default), default (Inductor) or reduce-overhead "
        "(Inductor and CUDA graphs, NVIDIA GPUs): faster images after a slow first one (it compiles; "
        "a later run reuses the compiled code from the cache folder). Asks for PyTorch with --backend auto",
    )
    gen.add_argument(
        "--steps", type=int, help="sampling steps, 1-4 (default: the model's default_steps, else 2)"
    )
    gen.add_argument("--seed", type=int, help="random seed (default: a new random seed, printed)")
    gen.add_argument("--size", type=parse_size, help="WxH in pixels (default: the model's size)")
    gen.add_argument("--guidance", type=float, default=4.5, help="embedded guidance scale (default 4.5)")
    gen.add_argument("--timesteps", type=parse_timesteps, help="custom TrigFlow times, e.g. 1.5708,1.0,0")
    gen.add_argument("--batch", type=int, default=1, help="images per prompt (seeds seed, seed+1, ...)")
    gen.add_argument("--control", type=Path, help="a sketch (or a picture: its edges are used) to follow")
    gen.add_argument(
        "--control-dir", type=Path, help="with --prompts-file: DIR/0000.png is line 0's sketch, ..."
    )
    gen.add_argument("--control-scale", type=float, default=1.0, help="ControlNet strength, 0-2 (default 1)")
    gen.add_argument(
        "--strength",
        type=float,
        default=0.8,
        help="without a ControlNet: how far from the sketch to start, 0-1 (default 0.8)",
    )
    gen.set_defaults(func=run)


def _check_options(args: argparse.Namespace) -> None:
    if (args.prompt is None) == (args.prompts_file is None):
        raise UsageError("give either a PROMPT or --prompts-file FILE")
    if args.prompts_file is not None and args.out_dir is None:
        raise UsageError("--prompts-file needs --out-dir DIR")
    if args.prompt is not None and args.output is None:
        raise UsageError("give -o OUT.png for a single prompt")
    if args.output is not None and args.output.suffix.lower() != ".png":
        raise UsageError(f"output must be a .png file, got {args.output}")
    if args.control_dir is not None and args.prompts_file is None:
        raise UsageError("--control-dir goes with --prompts-file (use --control for one prompt)")
    if args.control is not None and args.prompts_file is not None:
        raise UsageError("use --control-dir with --prompts-file")


MAX_PROMPTS_FILE_BYTES = 16 * 2**20


def read_prompts(path: Path) -> list[tuple[int, str]]:
    """(line number, prompt) for every non-blank line of a UTF-8 prompts file (a byte-order mark
    is dropped; a device, pipe or file over 16 MB is refused before it is read)."""
    from ..core.files import read_bounded_text

    text = read_bounded_text(path, MAX_PROMPTS_FILE_BYTES, "prompts file")
    prompts = [(i, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not prompts:
        raise SprintError(f"prompts file has no prompts: {path}")
    return prompts


def writable_folder(folder: Path, what: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before any model load."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileExistsError:
        raise SprintError(f"cannot write to {what} {folder}: it is a file, not a folder") from None
    except OSError as exc:
        raise SprintError(f"cannot write to {what} {folder}: {exc.strerror or exc}") from None
    return folder


def run(args: argparse.Namespace) -> int:
    _check_options(args)

    from ..core.request import GenerateRequest
    from ..core.sketch import load_control_image
    from ..formats.model_folder import FALLBACK_STEPS, read_model_defaults

    model_path = resolve_model(args.model)
    steps = args.steps
    if steps is None:  # the model's own default (sprint_desktop.json), read without loading it
        steps = read_model_defaults(model_path).steps if model_path.is_dir() else FALLBACK_STEPS
    width, height = args.size if args.size else (None, None)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)

    def control_for(line_no: int) -> Any:
        if args.control is not None:
            return load_control_image(str(args.control))
        if args.control_dir is not None:
            path = args.control_dir / f"{line_no:04d}.png"
            return load_control_image(str(path)) if path.exists() else None
        return None

    def request_for(prompt: str, seed: int, line_no: int = 0) -> GenerateRequest:
        return GenerateRequest(
            prompt=prompt,
            steps=steps,
            seed=seed,
            width=width,
            height=height,
            guidance=args.guidance,
            timesteps=args.timesteps,
            batch_size=args.batch,
            control_image=control_for(line_no),
            control_scale=args.control_scale,
            strength=args.strength,
        ).validate()

    # Validate what we can before loading the model: a typo should not cost a model load.
    jobs: list[tuple[int, str]] = (
        [(0, args.prompt)] if args.prompt is not None else read_prompts(args.prompts_file)
    )
    if args.control_dir is not None and not args.control_dir.is_dir():
        raise SprintError(f"--control-dir {args.control_dir} is not a folder of sketches")
    request_for(jobs[0][1], seed, jobs[0][0])
    if args.prompt is not None:
        writable_folder(args.output.parent, "the output folder")
    else:
        writable_folder(args.out_dir, "--out-dir")

    from ..core.metadata import save_png
    from ..factory import choose_backend, create_engine

    # --dtype and --compile are PyTorch options: asking for one means PyTorch.
    torch_only = args.dtype != "auto" or args.compile != "off"
    wanted = "torch" if args.backend == "auto" and torch_only else args.backend
    backend, notice = choose_backend(wanted, model_path, args.device)
    if notice:
        print(f"sprint: {notice}", file=sys.stderr)
    if backend != "torch" and args.compile != "off":
        print("sprint: warning: --compile is a PyTorch option; ONNX Runtime ignores it", file=sys.stderr)
    extra: dict[str, Any] = (
        {"dtype": args.dtype, "compile": args.compile}
        if backend == "torch"
        else {"bind_progress": bind_progress_printer()}
    )
    engine = create_engine(str(model_path), backend=backend, device=args.device, **extra)
    info = engine.load()
    compiled = f", compiled ({info.compile_mode})" if info.compile_mode != "off" else ""
    print(
        f"model {info.name} on {info.device} ({info.dtype}), backend {info.backend}{compiled}",
        file=sys.stderr,
    )
    if compiled:
        print("compiling on the first image (a minute or more the first time)…", file=sys.stderr)
    from ..engine.base import size_warning

    oversize = size_warning(width or info.default_width, height or info.default_height, info)
    if oversize:
        print(f"sprint: warning: {oversize}", file=sys.stderr)

    if args.prompt is not None:
        result = engine.generate(request_for(args.prompt, seed))
        paths = _save_images(result, args.output, save_png)
        for w in result.warnings:
            if w != oversize:  # said before the wait
                print(f"sprint: warning: {w}", file=sys.stderr)
        t = result.timings
        print(
            f"wrote {', '.join(str(p) for p in paths)} (seed {seed}, {result.request.steps} step(s), "
            f"{t.total_ms:.0f} ms: encode {t.encode_ms:.0f}, denoise {t.denoise_ms:.0f}, decode {t.decode_ms:.0f})"
        )
        return EXIT_OK

    out_dir: Path = args.out_dir
    failures = 0
    try:
        log = (out_dir / "timings.jsonl").open("w", encoding="utf-8")
    except OSError as exc:
        raise SprintError(f"cannot write {out_dir / 'timings.jsonl'}: {exc.strerror or exc}") from None
    with log:
        for line_no, prompt in jobs:
            target = out_dir / f"{line_no:04d}.png"
            record: dict[str, Any] = {"line": line_no, "prompt": prompt, "seed": seed}
            try:
                result = engine.generate(request_for(prompt, seed, line_no))
            except InvalidRequestError as exc:
                failures += 1
                print(f"sprint: line {line_no + 1}: invalid request: {exc}", file=sys.stderr)
                record["error"] = str(exc)
            else:
                paths = _save_images(result, target, save_png)
                record.update(
                    file=paths[0].name,
                    files=[p.name for p in paths],
                    steps=result.request.steps,
                    width=result.request.width,
                    height=result.request.height,
                    prompt_cache_hit=result.prompt_cache_hit,
                    **result.timings.as_dict(),
                )
                print(f"wrote {target} ({result.timings.total_ms:.0f} ms)")
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
            log.flush()
    if failures:
        print(f"sprint: {failures} of {len(jobs)} prompt(s) failed; the others were written", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _save_images(result: Any, target: Path, save_png: Any) -> list[Path]:
    if len(result.images) == 1:
        targets = [target]
    else:
        targets = [target.with_name(f"{target.stem}-{i}{target.suffix}") for i in range(len(result.images))]
    try:
        return [
            save_png(img, path, result.metadata(i))
            for i, (img, path) in enumerate(zip(result.images, targets, strict=True))
        ]
    except OSError as exc:
        raise SprintError(f"cannot write {target}: {exc.strerror or exc}") from None


def bind_progress_printer() -> Callable[[str, int, int], None]:
    """Binding progress on stderr: one line per component and per tenth of the weights."""
    shown: set[tuple[str, int]] = set()

    def progress(stage: str, done: int, total: int) -> None:
        key = (stage, 10 * done // max(1, total))
        if stage != "done" and key not in shown:
            shown.add(key)
            print(f"{stage}: {done} of {total} MiB of weights", file=sys.stderr)

    return progress

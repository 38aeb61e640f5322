"""The `sprint` command: generate, info, bench.

Heavy libraries (torch, diffusers) are imported inside the commands that need them, so
`sprint --help` and `sprint info` answer at once.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .core.errors import InvalidRequestError, NoModelInstalledError, SprintError
from .core.paths import default_model_path, embedded_model_candidates

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (or a single number for a square) -> (width, height)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        if len(parts) == 1:
            side = int(parts[0])
            return side, side
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"size must look like 1024x768, got {text!r}")


def parse_timesteps(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"timesteps must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"timesteps must be finite, got {text!r}")
    return values


def resolve_model(model: str | None) -> Path:
    if model:
        return Path(model).expanduser()
    path = default_model_path()
    if path is None:
        places = ", ".join(str(p) for p in embedded_model_candidates())
        raise NoModelInstalledError(
            "no model is installed: the embedded Sprint-Shapes model was not found "
            f"(looked in {places}). Pass --model PATH to a SANA-Sprint folder in diffusers layout "
            "or set SPRINT_MODEL."
        )
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sprint", description="One-step SANA-Sprint image generation.")
    parser.add_argument("--version", action="version", version=f"sprint-desktop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate images from a prompt or a file of prompts")
    gen.add_argument("prompt", nargs="?", help="what to draw")
    gen.add_argument("--prompts-file", type=Path, help="one prompt per line; writes DIR/0000.png, ...")
    gen.add_argument("--out-dir", type=Path, help="output folder for --prompts-file")
    gen.add_argument("-o", "--output", type=Path, help="output PNG for a single prompt")
    _add_model_args(gen, backends=("auto", "torch", "onnx"))
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

    models = sub.add_parser("models", help="list the known models and their state on this machine")
    group = models.add_mutually_exclusive_group()
    group.add_argument("--verify", metavar="NAME", help="re-check every file of an installed model")
    group.add_argument("--remove", metavar="NAME", help="delete a downloaded model")

    dl = sub.add_parser("download", help="download a catalog model for offline use (resumes, verifies)")
    dl.add_argument("name", help="a model name from `sprint models`")
    dl.add_argument("--endpoint", help="hub address (default: huggingface_hub's, or HF_ENDPOINT)")
    dl.add_argument("--timeout", type=float, default=30.0, help="seconds without an answer before giving up")

    exp = sub.add_parser("export-onnx", help="export the model to ONNX (cached under the user cache folder)")
    exp.add_argument("--model", help="model folder (default: the embedded model)")
    exp.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    exp.add_argument("--force", action="store_true", help="export again even if a complete export is cached")

    info = sub.add_parser("info", help="print the parameters stored in a PNG made by sprint")
    info.add_argument("image", type=Path)

    bench = sub.add_parser("bench", help="time our engine against the stock diffusers pipeline")
    _add_model_args(bench)
    bench.add_argument(
        "--arch",
        choices=["tiny", "sana-sprint-0.6b", "sana-sprint-1.6b"],
        help="build this architecture with random weights instead of loading --model",
    )
    bench.add_argument(
        "--random-weights",
        action="store_true",
        help="required with a published --arch: say that the weights are random",
    )
    bench.add_argument("--size", type=parse_size, help="WxH (default: the model's size)")
    bench.add_argument(
        "--steps",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[1, 2, 4],
        help="step counts to time, comma-separated (default 1,2,4)",
    )
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per case (median reported)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed runs per case first")
    bench.add_argument("--no-stock", action="store_true", help="skip the stock pipeline comparison")
    bench.add_argument(
        "--control",
        action="store_true",
        help="also time generation with a ControlNet and a new sketch per image",
    )
    bench.add_argument(
        "--text-encoder-layers",
        type=int,
        help="shrink Gemma-2 in a published --arch (for machines without the memory)",
    )
    bench.add_argument("--json", type=Path, default=Path("bench-out/bench.json"), help="where to write JSON")
    distill = sub.add_parser("distill", help="train the embedded Sprint-Shapes model's parts")
    dsub = distill.add_subparsers(dest="part", required=True)
    vae = dsub.add_parser("vae", help="train the tiny DC-AE on renders of the world")
    vae.add_argument("--out", default="runs/vae")
    vae.add_argument("--iters", type=int, default=1200)
    vae.add_argument("--batch", type=int, default=32)
    vae.add_argument("--lr", type=float, default=1e-3)
    vae.add_argument("--seed", type=int, default=0)
    vae.add_argument("--eval-every", type=int, default=300)
    teacher = dsub.add_parser("teacher", help="train the flow-matching teacher in the DC-AE latent")
    teacher.add_argument("--vae", default="runs/vae/vae")
    teacher.add_argument("--out", default="runs/teacher")
    teacher.add_argument("--iters", type=int, default=4000)
    teacher.add_argument("--batch", type=int, default=64)
    teacher.add_argument("--lr", type=float, default=3e-4)
    teacher.add_argument("--seed", type=int, default=0)
    teacher.add_argument("--eval-every", type=int, default=500)
    teacher.add_argument("--eval-images", type=int, default=96)
    teacher.add_argument(
        "--cache",
        type=int,
        default=0,
        help="encode this many scenes once and reuse them (0: fresh every step)",
    )
    teacher.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    teacher.add_argument("--ema", type=float, help="EMA decay (default 0.999)")
    teacher.add_argument(
        "--ema-reset",
        action="store_true",
        default=None,
        help="on resume, restart the EMA from the raw weights",
    )
    student = dsub.add_parser("student", help="distil the teacher into the 1-4 step student (sCM + LADD)")
    student.add_argument("--teacher", default="runs/teacher")
    student.add_argument("--vae", default="runs/vae/vae")
    student.add_argument("--out", default="runs/student")
    student.add_argument("--mode", choices=["hybrid", "scm", "ladd"], default="hybrid")
    student.add_argument("--iters", type=int, default=600)
    student.add_argument("--batch", type=int, default=32)
    student.add_argument("--lr", type=float, default=5e-5)
    student.add_argument("--seed", type=int, default=0)
    student.add_argument("--eval-every", type=int, default=200)
    student.add_argument("--eval-images", type=int, default=96)
    student.add_argument("--cache", type=int, default=0, help="reuse the teacher's cache of this many scenes")
    cn = dsub.add_parser("controlnet", help="train a Sprint ControlNet on a frozen one-step model")
    cn.add_argument("--model", default="models/sprint-shapes", help="the base SANA-Sprint model folder")
    cn.add_argument("--out", default="runs/controlnet")
    cn.add_argument(
        "--data", default="world", help="'world' (Sprint-Shapes) or a folder of x.png + x.txt pairs"
    )
    cn.add_argument("--num-layers", type=int, default=0, help="blocks copied from the base model (0: half)")
    cn.add_argument("--iters", type=int, default=1000)
    cn.add_argument("--batch", type=int, default=16)
    cn.add_argument("--lr", type=float, default=1e-4)
    cn.add_argument("--eval-every", type=int, default=250)
    cn.add_argument("--eval-images", type=int, default=64)
    pack = dsub.add_parser("package", help="assemble models/sprint-shapes from trained parts")
    pack.add_argument("--vae", default="runs/vae/vae")
    pack.add_argument("--teacher", default="runs/teacher")
    pack.add_argument("--student", default="runs/student/transformer")
    pack.add_argument("--out", default="models/sprint-shapes")
    pack.add_argument("--controlnet", help="a trained ControlNet folder to ship with the model")

    ev = sub.add_parser("evaluate", help="the model card's table: compliance and CPU ms per image")
    ev.add_argument("--model", help="a model folder, sampled by our engine")
    ev.add_argument("--teacher", help="a teacher run folder (flow Euler sampling with CFG); needs --vae")
    ev.add_argument("--vae", default="runs/vae/vae")
    ev.add_argument("--steps", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2, 4])
    ev.add_argument("--images", type=int, default=200)
    ev.add_argument("--json", type=Path, default=Path("bench-out/evaluate.json"))
    ev.add_argument("--grid", type=Path, help="also save a sample grid PNG (seen and held-out prompts)")
    return parser


BACKEND_HELP = {
    "auto": "ONNX Runtime when the model has an ONNX export (shipped or cached), else PyTorch",
    "torch": "PyTorch",
    "onnx": "ONNX Runtime on an export (made on first use; see export-onnx)",
}


def _add_model_args(p: argparse.ArgumentParser, backends: tuple[str, ...] = ("torch", "onnx")) -> None:
    p.add_argument("--model", help="model folder in diffusers layout (default: the embedded model)")
    p.add_argument(
        "--backend",
        choices=list(backends),
        default=backends[0],
        help="; ".join(f"{b}: {BACKEND_HELP[b]}" for b in backends) + f" (default {backends[0]})",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when available, else CPU")
    p.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"], default="auto")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            return cmd_generate(args, parser)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "export-onnx":
            return cmd_export(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "download":
            return cmd_download(args)
        if args.command == "bench":
            return cmd_bench(args, parser)
        if args.command == "distill":
            return cmd_distill(args)
        if args.command == "evaluate":
            return cmd_evaluate(args, parser)
    except InvalidRequestError as exc:
        print(f"sprint: invalid request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SprintError as exc:
        print(f"sprint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("sprint: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def cmd_download(args: argparse.Namespace) -> int:
    import time

    from .store.catalog import find_entry
    from .store.download import download

    start = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and done < total:
            return
        last[0] = now
        speed = done / max(now - start, 1e-6)
        left = (total - done) / speed if speed > 0 else float("inf")
        print(
            f"\r{done / 2**20:8.1f} / {total / 2**20:.1f} MB  {speed / 2**20:6.1f} MB/s  {left:5.0f} s left",
            end="",
            file=sys.stderr,
            flush=True,
        )

    folder = download(find_entry(args.name), endpoint=args.endpoint, progress=progress, timeout=args.timeout)
    print(f"\n{args.name} is ready for offline use in {folder}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from .store.catalog import find_entry, load_catalog, remove, state_of

    if args.remove:
        print(f"removed {remove(find_entry(args.remove))}")
        return EXIT_OK
    if args.verify:
        state = state_of(find_entry(args.verify))
        if state.state != "installed":
            raise SprintError(
                f"{args.verify} is {state.state}" + (f": {state.problem}" if state.problem else "")
            )
        print(
            f"{args.verify}: all files present and intact ({state.size_bytes / 2**20:.1f} MB) in {state.folder}"
        )
        return EXIT_OK
    print(f"{'name':<18} {'state':<10} {'on disk':>10} {'download':>9}  title")
    for entry in load_catalog():
        s = state_of(entry)
        print(
            f"{entry.name:<18} {s.state:<10} {s.size_bytes / 2**20:>8.1f}MB {entry.download_gb:>7.2f}GB  {entry.title}"
        )
        if s.problem:
            print(f"{'':<18} {s.problem}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    import time

    from .export.onnx_export import export_model

    start = time.perf_counter()

    def progress(component: str, i: int, total: int) -> None:
        if component != "done":
            print(f"[{i + 1}/{total}] exporting and checking {component}…", file=sys.stderr)

    folder = export_model(
        resolve_model(args.model), precision=args.precision, progress=progress, force=args.force
    )
    print(f"ONNX export ready in {folder} ({time.perf_counter() - start:.1f} s)")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .core.metadata import read_png_params

    print(json.dumps(read_png_params(args.image), indent=2, ensure_ascii=False))
    return EXIT_OK


def _read_prompts(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SprintError(f"prompts file not found: {path}") from None
    except UnicodeDecodeError:
        raise SprintError(f"prompts file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise SprintError(f"cannot read prompts file {path}: {exc}") from None
    prompts = [(i, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not prompts:
        raise SprintError(f"prompts file has no prompts: {path}")
    return prompts


def cmd_generate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if (args.prompt is None) == (args.prompts_file is None):
        parser.error("give either a PROMPT or --prompts-file FILE")
    if args.prompts_file is not None and args.out_dir is None:
        parser.error("--prompts-file needs --out-dir DIR")
    if args.prompt is not None and args.output is None:
        parser.error("give -o OUT.png for a single prompt")
    if args.output is not None and args.output.suffix.lower() != ".png":
        parser.error(f"output must be a .png file, got {args.output}")

    from .core.request import GenerateRequest
    from .engine.model_folder import FALLBACK_STEPS, read_model_defaults

    model_path = resolve_model(args.model)
    steps = args.steps
    if steps is None:  # the model's own default (sprint_desktop.json), read without loading it
        steps = read_model_defaults(model_path).steps if model_path.is_dir() else FALLBACK_STEPS
    width, height = args.size if args.size else (None, None)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)

    from .core.sketch import load_control_image

    if args.control_dir is not None and args.prompts_file is None:
        parser.error("--control-dir goes with --prompts-file (use --control for one prompt)")
    if args.control is not None and args.prompts_file is not None:
        parser.error("use --control-dir with --prompts-file")

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
        [(0, args.prompt)] if args.prompt is not None else _read_prompts(args.prompts_file)
    )
    request_for(jobs[0][1], seed, jobs[0][0])

    from .core.metadata import save_png
    from .engine import choose_backend, create_engine

    # --dtype is a PyTorch option: asking for one means PyTorch.
    wanted = "torch" if args.backend == "auto" and args.dtype != "auto" else args.backend
    backend, notice = choose_backend(wanted, model_path, args.device)
    if notice:
        print(f"sprint: {notice}", file=sys.stderr)
    extra = {"dtype": args.dtype} if backend == "torch" else {}
    engine = create_engine(str(model_path), backend=backend, device=args.device, **extra)
    info = engine.load()
    print(f"model {info.name} on {info.device} ({info.dtype}), backend {info.backend}", file=sys.stderr)

    if args.prompt is not None:
        result = engine.generate(request_for(args.prompt, seed))
        paths = _save_images(result, args.output, save_png)
        for w in result.warnings:
            print(f"sprint: warning: {w}", file=sys.stderr)
        t = result.timings
        print(
            f"wrote {', '.join(str(p) for p in paths)} (seed {seed}, {result.request.steps} step(s), "
            f"{t.total_ms:.0f} ms: encode {t.encode_ms:.0f}, denoise {t.denoise_ms:.0f}, decode {t.decode_ms:.0f})"
        )
        return EXIT_OK

    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    with (out_dir / "timings.jsonl").open("w", encoding="utf-8") as log:
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


def cmd_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .engine.bench import run_bench

    if args.arch and args.arch != "tiny" and not args.random_weights:
        parser.error(f"--arch {args.arch} builds random weights: add --random-weights to confirm")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.backend == "onnx":
        from .engine.bench import run_backend_bench

        if args.arch:
            parser.error("--backend onnx benchmarks a model folder: give --model (or use the embedded model)")
        report = run_backend_bench(
            resolve_model(args.model), args.steps, args.repeats, args.warmup, args.size, control=args.control
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(report["table"])
        return EXIT_OK
    model = None if args.arch else resolve_model(args.model)
    report = run_bench(
        model=model,
        arch=args.arch,
        device=args.device,
        dtype=args.dtype,
        size=args.size,
        steps=args.steps,
        repeats=args.repeats,
        warmup=args.warmup,
        stock=not args.no_stock,
        text_encoder_layers=args.text_encoder_layers,
        control=args.control,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(report["table"])
    print(f"\nJSON: {args.json}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .distill.evaluate import evaluate_model, evaluate_teacher, format_rows, sample_grid, write

    if bool(args.model) == bool(args.teacher):
        parser.error("give either --model PATH or --teacher RUN")
    if args.teacher:
        rows = evaluate_teacher(args.teacher, args.vae, args.steps, args.images)
    else:
        rows = evaluate_model(args.model, args.steps, args.images)
    write(rows, args.json)
    print(format_rows(rows))
    if args.grid:
        if not args.model:
            parser.error("--grid needs --model")
        for n in args.steps:
            path = args.grid.with_name(f"{args.grid.stem}-{n}step{args.grid.suffix or '.png'}")
            print(f"grid written to {sample_grid(args.model, path, steps=n)}")
    return EXIT_OK


# Each training part: its module in sprint_desktop.distill and its config dataclass. The parser's
# option names are the config's field names, so the config is filled from the namespace.
TRAINERS = {
    "vae": ("train_vae", "VAEConfig"),
    "teacher": ("train_teacher", "TeacherConfig"),
    "student": ("train_student", "StudentConfig"),
    "controlnet": ("train_controlnet", "ControlNetConfig"),
}


def cmd_distill(args: argparse.Namespace) -> int:
    if args.part in TRAINERS:
        import dataclasses
        import importlib

        module_name, config_name = TRAINERS[args.part]
        module = importlib.import_module(f"{__package__}.distill.{module_name}")
        config_cls = getattr(module, config_name)
        fields = {f.name for f in dataclasses.fields(config_cls)}
        config = config_cls(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
        print(f"{args.part} saved in {module.train(config)}")
        return EXIT_OK
    if args.part == "package":
        from .distill.package import package

        print(f"model written to {package(args.vae, args.teacher, args.student, args.out, args.controlnet)}")
        return EXIT_OK
    raise SprintError(f"unknown distill part {args.part!r}")


if __name__ == "__main__":
    sys.exit(main())

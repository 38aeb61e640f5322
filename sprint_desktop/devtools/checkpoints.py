"""Weights-only fp16 checkpoint files, to carry a training run to a borrowed GPU and back.

A training checkpoint (``runs/<name>/checkpoint.pt`` of `distill.train_teacher` or
`distill.train_student`) is a dict whose entries are of three kinds:
- a module's state dict (name -> tensor): stored as tensors ``<entry>/<name>``, floating ones in
  fp16 (integer buffers keep their dtype);
- an optimizer's state dict (``state`` + ``param_groups``): only the param groups (learning rates,
  betas, ...) travel; the moments stay behind, so the optimizer restarts like a fresh Adam;
- anything JSON can hold (``step``, a learning-rate scheduler's state dict): stored as JSON.

`pack` writes one safetensors file of chosen entries with everything else in its metadata, plus
the run's small text files (``config.json``, the saved ``transformer/config.json``...) and which
module entry each saved pretrained weight file holds. `unpack` merges one or more such files back
into a ``checkpoint.pt`` that ``sprint distill teacher/student`` resumes from (a raw entry missing
from the files is filled from its EMA twin and the other way round), and rewrites the run's
pretrained folders so the student, ``package`` and ``evaluate`` can use them at once.

    python -m sprint_desktop.devtools.checkpoints pack runs/teacher gpu-carry/teacher.safetensors
    python -m sprint_desktop.devtools.checkpoints unpack teacher-ema.safetensors teacher-raw.safetensors --out runs/teacher-gpu

`unpack_folder` does the same for a packaged teacher (``models/sprint-shapes-teacher``, whose
``training.json`` names its run and step): training goes on from the weights in the repository.

    python -m sprint_desktop.devtools.checkpoints unpack-folder models/sprint-shapes-teacher --out runs/teacher
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

FORMAT = "sprint-weights/1"
CHECKPOINT = "checkpoint.pt"
TEXT_FILES = ("config.json", "log.jsonl")
"""Small text files of the run folder that travel (besides the pretrained folders' configs)."""
LR_KEYS = ("lr", "initial_lr", "base_lrs", "_last_lr")
EMA = "ema_"


class CarryError(Exception):
    """A checkpoint file that cannot be packed or unpacked; the message says why."""


def entry_kind(value: Any) -> str:
    """ "module", "optimizer" or "json" (see the module docstring)."""
    if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        return "module"
    if isinstance(value, dict) and set(value) == {"state", "param_groups"}:
        return "optimizer"
    return "json"


def _pretrained_files(run_dir: Path, checkpoint: dict[str, Any]) -> dict[str, str]:
    """Saved pretrained weight files of the run (``transformer/diffusion_pytorch_model.safetensors``...)
    mapped to the checkpoint entry whose tensors they hold (the EMA twin first, as training saves it)."""
    from safetensors import safe_open

    found: dict[str, str] = {}
    for weights in sorted(run_dir.glob("*/*.safetensors")):
        with safe_open(str(weights), "pt") as f:
            keys = set(f.keys())
        for name in sorted(checkpoint, key=lambda n: not n.startswith(EMA)):
            value = checkpoint[name]
            if entry_kind(value) == "module" and set(value) == keys:
                found[weights.relative_to(run_dir).as_posix()] = name
                break
    return found


def _text_files(run_dir: Path, pretrained: Iterable[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    for name in TEXT_FILES:
        if (run_dir / name).is_file():
            files[name] = (run_dir / name).read_text()
    folders = {Path(p).parent for p in pretrained} | {Path("tokenizer")}
    for folder in sorted(folders):
        for f in sorted((run_dir / folder).glob("*")):
            if f.is_file() and f.suffix in (".json", ".txt", ".model", ".jinja"):
                files[f.relative_to(run_dir).as_posix()] = f.read_text()
    return files


def pack(
    run_dir: str | Path,
    dest: str | Path,
    entries: Sequence[str] | None = None,
    checkpoint: dict[str, Any] | None = None,
    max_mib: float | None = None,
) -> list[Path]:
    """Write ``dest`` from ``run_dir/checkpoint.pt`` (or ``checkpoint`` when given): the module
    entries named in ``entries`` (all when None) as fp16 tensors, every optimizer's param groups and
    every JSON entry in the metadata, with the run's text files.

    With ``max_mib`` the tensors are split over as many files as needed to keep each under it
    (``<stem>-1of3.safetensors``...; each file carries the metadata, `read` wants them all).
    Returns the files written."""
    from safetensors.torch import save_file

    run_dir, dest = Path(run_dir), Path(dest)
    if checkpoint is None:
        path = run_dir / CHECKPOINT
        if not path.is_file():
            raise CarryError(f"no {CHECKPOINT} in {run_dir}: nothing to pack")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    kinds = {name: entry_kind(v) for name, v in checkpoint.items()}
    modules = [n for n, k in kinds.items() if k == "module"]
    chosen = modules if entries is None else list(entries)
    unknown = [n for n in chosen if n not in modules]
    if unknown:
        raise CarryError(f"{run_dir}/{CHECKPOINT} has no module entry {unknown}; it has {modules}")
    tensors: dict[str, torch.Tensor] = {}
    dtypes: dict[str, str] = {}
    for name in chosen:
        for key, t in checkpoint[name].items():
            t = t.detach().cpu()
            if t.is_floating_point():
                dtypes.setdefault(name, str(t.dtype).replace("torch.", ""))
                t = t.to(torch.float16)
            tensors[f"{name}/{key}"] = t.contiguous()
    json_entries: dict[str, Any] = {}
    optimizers: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind == "optimizer":
            optimizers[name] = checkpoint[name]["param_groups"]
        elif kind == "json":
            json_entries[name] = checkpoint[name]
    pretrained = {f: e for f, e in _pretrained_files(run_dir, checkpoint).items() if e in chosen}
    try:
        metadata = {
            "format": FORMAT,
            "kinds": json.dumps(kinds),
            "modules": json.dumps(chosen),
            "dtypes": json.dumps(dtypes),
            "json": json.dumps(json_entries),
            "optimizers": json.dumps(optimizers),
            "pretrained": json.dumps(pretrained),
            "files": json.dumps(_text_files(run_dir, pretrained)),
        }
    except TypeError as exc:
        raise CarryError(
            f"{run_dir}/{CHECKPOINT} holds an entry that is neither weights nor JSON: {exc}"
        ) from None
    header = sum(len(k) + len(v) for k, v in metadata.items()) + 200 * len(tensors)
    shards = _split(tensors, None if max_mib is None else int(max_mib * 2**20) - header)
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for i, shard in enumerate(shards, 1):
        target = dest if len(shards) == 1 else dest.with_name(f"{dest.stem}-{i}of{len(shards)}{dest.suffix}")
        tmp = target.with_name(target.name + ".tmp")
        save_file(shard, str(tmp), metadata={**metadata, "shard": f"{i}/{len(shards)}", "set": dest.stem})
        tmp.replace(target)
        written.append(target)
    return written


def _split(tensors: dict[str, torch.Tensor], limit: int | None) -> list[dict[str, torch.Tensor]]:
    """Consecutive groups of ``tensors`` of at most ``limit`` bytes each (one group without a limit)."""
    if limit is None:
        return [tensors]
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, t in tensors.items():
        n = t.numel() * t.element_size()
        if n > limit:
            raise CarryError(f"tensor {key} ({n / 2**20:.1f} MiB) alone is over the file size limit")
        if size + n > limit and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][key] = t
        size += n
    return shards


def shard_files(folder: str | Path, stem: str) -> list[Path]:
    """The file(s) `pack` wrote for ``dest = folder/stem.safetensors``."""
    folder = Path(folder)
    single = folder / f"{stem}.safetensors"
    return [single] if single.is_file() else sorted(folder.glob(f"{stem}-*of*.safetensors"))


def read(paths: Sequence[str | Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge packed files into a checkpoint dict (fp32 tensors) and their merged metadata
    (``kinds``, ``files``, ``pretrained``). Later files win for the same entry."""
    from safetensors import safe_open

    if not paths:
        raise CarryError("no packed file given")
    checkpoint: dict[str, Any] = {}
    meta: dict[str, Any] = {"kinds": {}, "files": {}, "pretrained": {}, "dtypes": {}}
    sets: dict[str, tuple[int, set[int]]] = {}
    for path in paths:
        try:
            with safe_open(str(path), "pt") as f:
                header = f.metadata() or {}
                if header.get("format") != FORMAT:
                    raise CarryError(f"{path} is not a packed checkpoint ({FORMAT})")
                index, total = header.get("shard", "1/1").split("/")
                sets.setdefault(header.get("set", str(path)), (int(total), set()))[1].add(int(index))
                for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                    entry, name = key.split("/", 1)
                    checkpoint.setdefault(entry, {})[name] = f.get_tensor(key)
        except CarryError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors raises SafetensorError, OSError, ...
            raise CarryError(f"cannot read {path}: {exc}") from None
        for key in ("kinds", "files", "pretrained", "dtypes"):
            meta[key].update(json.loads(header[key]))
        checkpoint.update(json.loads(header["json"]))
        for name, groups in json.loads(header["optimizers"]).items():
            checkpoint[name] = {"state": {}, "param_groups": groups}
    for name, (total, seen) in sets.items():
        if len(seen) != total:
            missing = sorted(set(range(1, total + 1)) - seen)
            raise CarryError(f"{name}: part(s) {missing} of {total} are missing; give all of its files")
    for entry, dtype in meta["dtypes"].items():
        if entry in checkpoint:
            checkpoint[entry] = {
                k: t.to(getattr(torch, dtype)) if t.is_floating_point() else t
                for k, t in checkpoint[entry].items()
            }
    for name, kind in meta["kinds"].items():
        if kind != "module" or name in checkpoint:
            continue
        twin = name[len(EMA) :] if name.startswith(EMA) else EMA + name
        if twin not in checkpoint:
            raise CarryError(f"the packed files hold neither {name} nor {twin}")
        checkpoint[name] = {k: t.clone() for k, t in checkpoint[twin].items()}
    return checkpoint, meta


def scale_lr(checkpoint: dict[str, Any], factor: float) -> None:
    """Multiply every learning rate in the optimizers' param groups and the schedulers' states
    (``lr``, ``initial_lr``, ``base_lrs``, ``_last_lr``, also nested) by ``factor``, in place."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scaled(v) if k in LR_KEYS else walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    def scaled(value: Any) -> Any:
        if isinstance(value, list):
            return [scaled(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value * factor
        return walk(value)

    for name, value in list(checkpoint.items()):
        if isinstance(value, dict) and entry_kind(value) != "module":
            checkpoint[name] = walk(value)


def unpack(
    paths: Sequence[str | Path],
    out: str | Path,
    lr: float | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write ``out/checkpoint.pt`` (resumable by the training script), the run's text files and
    its pretrained folders from packed ``paths``. ``lr`` rescales every learning rate by
    ``lr / config['lr']`` (the run's config as packed); ``config`` entries override the packed
    ``config.json``. Returns ``out``."""
    from safetensors.torch import save_file

    checkpoint, meta = read(paths)
    out = Path(out)
    files = dict(meta["files"])
    run_config = json.loads(files.pop("config.json", "{}"))
    out.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    for rel, entry in meta["pretrained"].items():
        save_file(
            {k: t.contiguous() for k, t in checkpoint[entry].items()},
            str(out / rel),
            metadata={"format": "pt"},
        )
    return _write_run(checkpoint, run_config, out, lr, config)


def _write_run(
    checkpoint: dict[str, Any],
    run_config: dict[str, Any],
    out: Path,
    lr: float | None,
    config: dict[str, Any] | None,
) -> Path:
    """The end of `unpack` and `unpack_folder`: rescale the learning rates to ``lr``, point the
    run's ``config.json`` at ``out`` with ``config``'s changes, write it and ``checkpoint.pt``."""
    run_config = dict(run_config)
    if lr is not None:
        if not run_config.get("lr"):
            raise CarryError("the run carries no config.json with an lr: cannot rescale to --lr")
        scale_lr(checkpoint, lr / float(run_config["lr"]))
        run_config["lr"] = lr
    if run_config:
        run_config["out"] = str(out)  # the run now lives here, wherever it was packed
    run_config.update(config or {})
    out.mkdir(parents=True, exist_ok=True)
    if run_config:
        (out / "config.json").write_text(json.dumps(run_config, indent=2))
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(out / CHECKPOINT)
    return out


def is_teacher_folder(path: str | Path) -> bool:
    """A packaged teacher (`distill.package.package_teacher`) that says which run and step it is."""
    from ..distill.package import TRAINING_FILE

    return (Path(path) / "model_index.json").is_file() and (Path(path) / TRAINING_FILE).is_file()


def teacher_training(folder: str | Path) -> dict[str, Any]:
    """A packaged teacher's ``training.json`` (``config``, ``step``, ``cpu_s``)."""
    from ..distill.package import TRAINING_FILE

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise CarryError(f"{folder} is no packaged teacher (no model_index.json)")
    if not (folder / TRAINING_FILE).is_file():
        raise CarryError(
            f"{folder} has no {TRAINING_FILE} (packaged before it was written): "
            "package the run again with `sprint distill package-teacher`"
        )
    try:
        record = json.loads((folder / TRAINING_FILE).read_text())
    except ValueError as exc:
        raise CarryError(f"cannot read {folder / TRAINING_FILE}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("config", {}), dict):
        raise CarryError(f"{folder / TRAINING_FILE} holds no run config")
    return record


def unpack_folder(
    folder: str | Path,
    out: str | Path,
    lr: float | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """`unpack` for a packaged teacher folder (``sprint distill package-teacher``): ``out`` becomes a
    teacher run at the folder's step that ``sprint distill teacher`` resumes from. The raw weights
    start equal to the (EMA) weights of the folder, in fp32, the transformer with its guidance
    embedding restored (`with_guidance_embedding`, exact); the optimizer's moments are fresh, the
    schedule is at the folder's step. ``lr`` and ``config`` as in `unpack`. Returns ``out``."""
    from diffusers import SanaTransformer2DModel
    from transformers import Gemma2Model, PreTrainedTokenizerFast

    from ..distill.package import with_guidance_embedding
    from ..distill.train_teacher import TeacherConfig, make_optimizer

    folder, out = Path(folder), Path(out)
    record = teacher_training(folder)
    fields = {f.name for f in dataclasses.fields(TeacherConfig)}
    cfg = TeacherConfig(**{k: v for k, v in record.get("config", {}).items() if k in fields})
    # the run's config as `train` writes it (every field; a field of a newer version kept too)
    run_config: dict[str, Any] = {**dataclasses.asdict(cfg), **record.get("config", {})}
    step = int(record.get("step", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the restored guidance branch's first layer is drawn (its output is 0)
        transformer = with_guidance_embedding(
            SanaTransformer2DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32)
        )
    text_encoder = Gemma2Model.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32)
    opt, sched = make_optimizer([*transformer.parameters(), *text_encoder.parameters()], cfg, step)
    weights = {
        "transformer": transformer.state_dict(),
        "text_encoder": text_encoder.state_dict(),
    }
    checkpoint: dict[str, Any] = {name: {k: t.clone() for k, t in w.items()} for name, w in weights.items()}
    checkpoint.update({EMA + name: {k: t.clone() for k, t in w.items()} for name, w in weights.items()})
    checkpoint.update(
        opt=opt.state_dict(), sched=sched.state_dict(), step=step, cpu_s=float(record.get("cpu_s", 0.0))
    )
    out.mkdir(parents=True, exist_ok=True)
    transformer.save_pretrained(out / "transformer", safe_serialization=True)
    text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer").save_pretrained(out / "tokenizer")
    return _write_run(checkpoint, run_config, out, lr, config)


def mib(path: str | Path) -> float:
    return round(Path(path).stat().st_size / 2**20, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sprint_desktop.devtools.checkpoints", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="a run folder's checkpoint.pt -> one fp16 weights-only file")
    p.add_argument("run_dir")
    p.add_argument("dest")
    p.add_argument("--entries", help="comma-separated module entries (default: all)")
    p.add_argument("--max-mib", type=float, help="split into files of at most this size")
    u = sub.add_parser("unpack", help="packed files -> RUN/checkpoint.pt + pretrained folders")
    u.add_argument("files", nargs="+")
    f = sub.add_parser(
        "unpack-folder", help="a packaged teacher (models/sprint-shapes-teacher) -> RUN/checkpoint.pt + ..."
    )
    f.add_argument("folder")
    for cmd in (u, f):
        cmd.add_argument("--out", required=True, help="the run folder to write (resume with --out RUN)")
        cmd.add_argument("--lr", type=float, help="continue at this learning rate (rescales the schedule)")
        cmd.add_argument(
            "--config",
            action="append",
            metavar="FIELD=VALUE",
            help="change a field of the run's config.json (e.g. batch=64), a JSON value",
        )
    args = parser.parse_args(argv)
    try:
        if args.cmd == "pack":
            entries = args.entries.split(",") if args.entries else None
            for dest in pack(args.run_dir, args.dest, entries, max_mib=args.max_mib):
                print(f"{dest}: {mib(dest)} MiB")
        else:
            changes = {}
            for item in args.config or []:
                name, _, value = item.partition("=")
                try:
                    changes[name] = json.loads(value)
                except ValueError:
                    changes[name] = value
            if args.cmd == "unpack":
                out = unpack(args.files, args.out, lr=args.lr, config=changes)
            else:
                out = unpack_folder(args.folder, args.out, lr=args.lr, config=changes)
            step = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True).get("step")
            print(f"{out / CHECKPOINT} written (step {step})")
    except (CarryError, OSError) as exc:  # OSError: a folder that diffusers / transformers cannot load
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`sprint distill PART`: train the embedded Sprint-Shapes model's parts.

Each training part's options are generated from its config dataclass (`VAEConfig`, `TeacherConfig`,
...): every field becomes `--field-name` with the field's type and the dataclass default, so each
default lives in one place. The training modules import PyTorch, so a part's options are built only
when that part is parsed or its help is shown (`sprint --help` stays fast and torch-free).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import types
import typing
from collections.abc import Callable
from typing import Any

from ..core.errors import SprintError
from .common import EXIT_OK

# Each training part: its module in sprint_desktop.distill, its config dataclass and its help line.
TRAINERS: dict[str, tuple[str, str, str]] = {
    "vae": ("train_vae", "VAEConfig", "train the tiny DC-AE on renders of the world"),
    "teacher": ("train_teacher", "TeacherConfig", "train the flow-matching teacher in the DC-AE latent"),
    "student": (
        "train_student",
        "StudentConfig",
        "distil the teacher into the 1-4 step student (sCM + LADD)",
    ),
    "pairs": (
        "pairs",
        "PairsConfig",
        "cache the teacher's ODE pairs that `student --pairs` trains on (shards of 1,000)",
    ),
    "controlnet": (
        "train_controlnet",
        "ControlNetConfig",
        "train a Sprint ControlNet on a frozen one-step model",
    ),
}

# Words for some options (the defaults come from the dataclasses; these add no default).
HELP = {
    "cache": "scenes encoded once and reused; the student reuses the teacher's cache (0: fresh every step)",
    "mixed_precision": "autocast precision",
    "ema": "EMA decay of the weights",
    "ema_reset": "on resume, restart the EMA from the raw weights",
    "model": "the base SANA-Sprint model folder",
    "data": "'world' (Sprint-Shapes) or a folder of x.png + x.txt pairs",
    "num_layers": "blocks copied from the base model (0: half)",
    "decay_start": "with --lr-schedule cosine, hold the rate until this step (a cool-down branch of a resumed run)",
    "warmup": "learning-rate warm-up steps",
    "lr_schedule": "after the warm-up: constant, or a cosine to 0 at --iters",
    "init": "start from this student transformer folder (e.g. a run's best/transformer) instead of the teacher",
    "deepen": "insert an identity block after every N blocks of the starting weights: a student deeper than its teacher (0: as deep)",
    "pairs": "(noise, teacher sample) pairs for the one-step regression (pairs.kd_loss), cached in shards of 1,000 beside the runs (student: 0 none; --mode kd: it alone)",
    "pair_weight": "weight of the one-step regression on the teacher's pairs",
    "first": "build from this shard on (shards of 1,000 pairs; a second builder beside the first)",
    "pair_steps": "the teacher's Euler steps per pair (classifier-free guidance as the student's)",
    "pair_balance": "draw the pairs of each caption family (single, two, relation, counting) equally often",
    "pair_filter": "'judge': teach only the pairs whose teacher sample passes the judge (judged once, cached beside each shard); '': all",
    "pairs_first": "the first shard of --pairs the student learns (a later run on pairs an earlier one did not see)",
    "extra_pairs": "more pairs: shards --extra-first .. of the --extra-family stream (its own shards), filtered and balanced with the others",
    "extra_family": "the caption family of --extra-pairs (and of `pairs --family`); '': a second range of the every-family stream",
    "extra_first": "the first shard of --extra-pairs the student learns",
    "family": "build the stream of one caption family's captions (single, two, relation, counting); '': every family",
    "freeze": "a regex over the student's parameter names: those keep the teacher's values",
    "eval_seed": "captions of the in-run evaluation that picks best/ (not `sprint evaluate`'s 999, so the pick is not made on the reported captions)",
}
# Allowed values of str fields that are not typed as a Literal.
CHOICES = {
    "mode": ("hybrid", "scm", "ladd", "kd"),
    "mixed_precision": ("no", "bf16", "fp16"),
    "lr_schedule": ("constant", "cosine"),
    "extra_family": ("", "single", "two", "relation", "counting"),
    "family": ("", "single", "two", "relation", "counting"),
}


class LazyParser(argparse.ArgumentParser):
    """An argument parser that adds its options (``fill(parser)``) the first time it parses or
    shows help, so a subcommand's heavy imports happen only when that subcommand is used."""

    def __init__(self, *args: Any, fill: Callable[[argparse.ArgumentParser], None] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._fill = fill

    def _filled(self) -> None:
        fill, self._fill = self._fill, None
        if fill is not None:
            fill(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self._filled()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._filled()
        return super().format_help()

    def format_usage(self) -> str:
        self._filled()
        return super().format_usage()


def config_class(part: str) -> type:
    module_name, config_name, _ = TRAINERS[part]
    module = importlib.import_module(f"{__package__.rpartition('.')[0]}.distill.{module_name}")
    return typing.cast(type, getattr(module, config_name))


def field_default(field: dataclasses.Field[Any]) -> Any:
    """The dataclass default of a field (calling its factory), or MISSING."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _sequence_parser(item: type, container: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return container(item(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated {item.__name__} values, got {text!r}"
            ) from None

    parse.__name__ = f"{container.__name__}[{item.__name__}]"
    return parse


def _option_kwargs(name: str, hint: Any) -> dict[str, Any] | None:
    """argparse keywords for a field of type `hint`; None for a type the command line cannot give."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) != 1:
            return None
        hint = rest[0]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return {"type": type(args[0]), "choices": args}
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint in (int, float, str):
        return {"type": hint, **({"choices": CHOICES[name]} if name in CHOICES else {})}
    if origin in (tuple, list) and args and args[0] in (int, float, str):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return None
        return {"type": _sequence_parser(args[0], origin)}
    return None


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value) if value != "" else '""'


def add_config_options(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One option per field of the dataclass `config_cls`, with the field's type and default.
    A field of a type the command line cannot express gets no option (it keeps its default)."""
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        if not field.init:
            continue
        kwargs = _option_kwargs(field.name, hints[field.name])
        if kwargs is None:
            continue
        default = field_default(field)
        words = HELP.get(field.name, "")
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            words = f"{words} (default: {_shown(default)})".strip()
        parser.add_argument(
            "--" + field.name.replace("_", "-"), dest=field.name, help=words.replace("%", "%%"), **kwargs
        )


def _package_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vae", default="runs/vae/vae")
    parser.add_argument("--teacher", default="runs/teacher")
    parser.add_argument("--student", default="runs/student/transformer")
    parser.add_argument("--out", default="models/sprint-shapes")
    parser.add_argument("--controlnet", help="a trained ControlNet folder to ship with the model")


def _package_teacher_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vae", default="runs/vae/vae")
    parser.add_argument("--teacher", default="runs/teacher", help="a teacher run folder")
    parser.add_argument("--out", default="models/sprint-shapes-teacher")


def register(sub: Any) -> None:
    distill = sub.add_parser("distill", help="train the embedded Sprint-Shapes model's parts")
    parts = distill.add_subparsers(dest="part", required=True, parser_class=LazyParser)
    for part, (_, _, words) in TRAINERS.items():
        parts.add_parser(
            part, help=words, fill=lambda p, part=part: add_config_options(p, config_class(part))
        ).set_defaults(func=run)
    parts.add_parser(
        "package", help="assemble models/sprint-shapes from trained parts", fill=_package_options
    ).set_defaults(func=run)
    parts.add_parser(
        "package-teacher",
        help="write a teacher run as a stock SanaPipeline folder (models/sprint-shapes-teacher)",
        fill=_package_teacher_options,
    ).set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.part in TRAINERS:
        config_cls = config_class(args.part)
        names = {f.name for f in dataclasses.fields(config_cls) if f.init}
        config = config_cls(**{k: v for k, v in vars(args).items() if k in names})
        module = importlib.import_module(config_cls.__module__)
        print(f"{args.part} saved in {module.train(config)}")
        return EXIT_OK
    if args.part == "package":
        from ..distill.package import package

        print(f"model written to {package(args.vae, args.teacher, args.student, args.out, args.controlnet)}")
        return EXIT_OK
    if args.part == "package-teacher":
        from ..distill.package import package_teacher

        print(f"teacher written to {package_teacher(args.vae, args.teacher, args.out)}")
        return EXIT_OK
    raise SprintError(f"unknown distill part {args.part!r}")

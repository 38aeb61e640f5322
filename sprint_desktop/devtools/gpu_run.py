"""One prepared run on a borrowed GPU (docs/GPU_RUN.md): check, benchmarks, training, each section
in its own process with its own time budget, so the whole run ends inside its limit whatever a
section does; results as JSON + logs in ``--out`` (the device machine's ``$OUT``).

    scripts/gpu_prepare.sh            # here: wheels + the latest teacher checkpoint -> gpu-carry/
                                      # (--teacher models/sprint-shapes-teacher: the tree's teacher)
    scripts/gpu_run.sh                # there: the run (scripts/gpu_run.sh --dry-run: here, tiny)

What comes back (at most 8 files of at most 16 MiB): ``gpu_run.json`` (everything measured,
merged after every section), ``gpu_run.log`` (every section's output), and the newest weights of
each training phase, packed by `devtools.checkpoints` and split under 16 MiB a file:
``teacher-ema[-NofM].safetensors``, ``student-hybrid[-NofM]...``, and ``teacher-raw[-NofM]...``
when files are left (``unpack`` makes runs/ folders of them to continue on a CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .section import Section

ROOT = Path(__file__).resolve().parents[2]
LOG = "gpu_run.log"
TRAIN_ENV = "SPRINT_GPU_TRAIN"
"""JSON of `gpu_train.TrainSettings` fields to change (``run --train teacher_iters=8000``)."""
CARRY_LIMIT_MIB = 64.0


@dataclass(frozen=True)
class Budget:
    """Seconds per section; training gets what is left after ``margin``."""

    total: float
    check: float
    bench: float
    bound: float = 240.0
    """Issue #12's rows (`bound_section`): only when asked for, ``--sections ...,bound``."""
    kd: float = 300.0
    """The kd student on the teacher's pairs (`gpu_train.kd_phase`): pairs, then the regression."""
    teacher_share: float = 0.6
    margin: float = 10.0

    @classmethod
    def for_run(cls, total: float, dry: bool, teacher_share: float = 0.6) -> Budget:
        if dry:  # generous: the dry run checks that every section works, on a shared CPU
            return cls(total=total, check=120.0, bench=240.0, teacher_share=teacher_share)
        return cls(total=total, check=60.0, bench=210.0, teacher_share=teacher_share)


# ----------------------------------------------------------------------------------- check section
def _versions() -> dict[str, Any]:
    import importlib

    found: dict[str, Any] = {}
    for name in (
        "torch",
        "diffusers",
        "transformers",
        "accelerate",
        "onnxruntime",
        "huggingface_hub",
        "numpy",
    ):
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a missing or broken package is a finding
            found[name] = f"not importable: {type(exc).__name__}: {exc}"[:200]
            continue
        found[name] = {
            "version": getattr(module, "__version__", "?"),
            "path": str(Path(module.__file__ or "").parent),
        }
    return found


def _nvidia_smi() -> str | None:
    try:
        r = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi: {exc}"
    return (r.stdout or r.stderr).strip()


def gpu_test_files() -> list[str]:
    """The test files that hold ``gpu``-marked tests (only these are collected: the rest of the
    suite needs packages the device machine lacks, such as PySide6)."""
    return sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py") if "mark.gpu" in p.read_text()
    )


def check_section(section: Section, dry: bool) -> None:
    import torch

    cuda = torch.cuda.is_available()
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cuda_available": cuda,
        "torch_cuda": torch.version.cuda,
        "nvidia_smi": _nvidia_smi(),
        "versions": _versions(),
        "wheels": os.environ.get("SPRINT_WHEELS", ""),
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            bf16=torch.cuda.is_bf16_supported(),
        )
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
        info["onnxruntime_device"] = ort.get_device()
    except Exception as exc:  # noqa: BLE001 - a finding, not a failure
        info["onnxruntime_providers"] = f"{type(exc).__name__}: {exc}"
    section.set("info", info)
    print(json.dumps(info, indent=2), flush=True)
    files = gpu_test_files()
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "gpu",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        *files,
    ]
    if dry:
        cmd.append("--collect-only")
    timeout = max(section.left() - 3.0, 5.0)
    rc: int | str
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        output, rc = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        output, rc = f"{partial}\n(timed out after {timeout:.0f} s)", "timeout"
    print(output, flush=True)
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    section.set(
        "gpu_tests", {"files": files, "rc": rc, "summary": lines[-1] if lines else "", "collect_only": dry}
    )


# --------------------------------------------------------------------------------- the sections
def bound_section(section: Section, work: Path, dry: bool) -> None:
    """Issue #12's GPU rows: SANA-Sprint 0.6B (random bf16 weights) at 1024 px through weight-free
    graphs bound to it, on TensorRT-RTX and CUDA, against PyTorch CUDA (`bound_bench.bound_graph_rows`),
    each stage recorded as it ends. The dry run: the reduced architecture on the CPU provider."""
    from .bound_bench import bound_graph_rows

    def keep(rows: dict[str, Any]) -> None:
        section.set("rows", rows)

    if dry:
        bound_graph_rows(
            "reduced",
            work / "bound",
            providers=("cpu",),
            size=16,
            steps=(1,),
            repeats=1,
            precision="fp32",
            device="cpu",
            record=keep,
        )
    else:
        bound_graph_rows(
            "sana-sprint-0.6b", work / "bound", size=1024, steps=(1, 2, 4), repeats=5, record=keep
        )


def run_section(name: str, work: Path, carry: Path, out: Path, deadline: float, dry: bool) -> int:
    """One section in this process; its record is ``work/<name>.json``."""
    import traceback

    section = Section(work / f"{name}.json", deadline)
    try:
        import torch

        device = "cuda" if (torch.cuda.is_available() and not dry) else "cpu"
        section.set("device", device)
        if name == "check":
            check_section(section, dry)
        elif name == "bench":
            from .gpu_bench import BenchSettings
            from .gpu_bench import run as run_bench_section

            run_bench_section(section, BenchSettings.dry() if dry else BenchSettings(), work)
        elif name == "bound":
            bound_section(section, work, dry)
        else:
            from . import gpu_train

            if device == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
            settings = gpu_train.TrainSettings.dry() if dry else gpu_train.TrainSettings()
            settings = dataclasses.replace(settings, **json.loads(os.environ.get(TRAIN_ENV, "{}")))
            if name == "data":
                gpu_train.data_phase(section, carry, work, settings, device)
            elif name == "teacher":
                gpu_train.teacher_phase(section, carry, work, out, settings, device)
            elif name == "student":
                gpu_train.student_phase(section, carry, work, out, settings, device)
            elif name == "kd":
                gpu_train.kd_phase(section, carry, work, out, settings, device)
            else:
                raise ValueError(f"no section {name!r}")
        section.done()
        return 0
    except Exception as exc:  # noqa: BLE001 - recorded; the run goes on with the next section
        traceback.print_exc()
        section.fail(exc)
        return 1


def install_wheels(wheels: Path, site: Path) -> list[str]:
    """``pip install --no-index --no-deps --target site`` of every wheel in ``wheels`` (nothing
    when there are none); returns their names. The sections then import from ``site`` first."""
    found = sorted(wheels.glob("*.whl"))
    if found:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        cmd += ["--no-cache-dir", "--upgrade", "--target", str(site), *map(str, found)]
        subprocess.run(cmd, check=True)
    return [p.name for p in found]


class Runner:
    """Starts sections as child processes (own process group, killed at their deadline) and merges
    their records into ``out/gpu_run.json`` after each."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start = time.time()
        self.budget = Budget.for_run(args.budget, args.dry_run, args.teacher_share)
        self.out, self.work, self.carry = Path(args.out), Path(args.work), Path(args.carry)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.runs: dict[str, dict[str, Any]] = {}
        t0 = time.time()
        site = self.work / "site"
        self.install_error = ""
        try:
            self.wheels = install_wheels(self.carry / "wheels", site)
        except subprocess.CalledProcessError as exc:  # recorded; the sections say what is missing
            self.wheels, self.install_error = [], f"pip install of {self.carry / 'wheels'} failed: {exc}"
        self.install_s = round(time.time() - t0, 1)
        path = os.environ.get("PYTHONPATH", "")
        # the tree first (it is the code under test), then the carried wheels, then the rest
        path = os.pathsep.join([str(ROOT), str(site), *([path] if path else [])]) if self.wheels else path
        self.env = {
            **os.environ,
            "PYTHONPATH": path,
            "SPRINT_WHEELS": " ".join(self.wheels),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "XDG_CACHE_HOME": str(self.work / "cache"),  # ONNX exports and the like stay in the work folder
            TRAIN_ENV: json.dumps(dict(_setting(kv) for kv in args.train or [])),
        }

    def left(self) -> float:
        return self.start + self.budget.total - time.time()

    def launch(self, name: str, seconds: float, log: Path) -> tuple[subprocess.Popen[bytes], float]:
        deadline = time.time() + max(seconds, 1.0)
        cmd = [sys.executable, "-m", "sprint_desktop.devtools.gpu_run", "section", name]
        cmd += ["--work", str(self.work), "--carry", str(self.carry), "--out", str(self.out)]
        cmd += ["--deadline", f"{deadline:.1f}"] + (["--dry-run"] if self.args.dry_run else [])
        with log.open("ab") as f:
            f.write(f"\n===== {name} (budget {seconds:.0f} s) =====\n".encode())
            f.flush()
            proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        self.runs[name] = {"budget_s": round(seconds, 1), "started_s": round(time.time() - self.start, 1)}
        return proc, deadline

    def finish(self, name: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
        """Wait for ``proc`` until its deadline (plus a grace second), then kill its group."""
        try:
            rc: int | str = proc.wait(timeout=max(deadline - time.time(), 0.0) + 1.0)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "killed at its deadline"
        self.runs[name].update(
            rc=rc, wall_s=round(time.time() - self.start - self.runs[name]["started_s"], 1)
        )
        self.merge()

    def section(self, name: str, seconds: float) -> None:
        if seconds < 5.0:
            self.runs[name] = {"skipped": f"{seconds:.0f} s left"}
            self.merge()
            return
        self.finish(name, *self.launch(name, seconds, self.out / LOG))

    def merge(self) -> dict[str, Any]:
        sections = {}
        for name, run in self.runs.items():
            path = self.work / f"{name}.json"
            record = json.loads(path.read_text()) if path.exists() else {}
            sections[name] = {**run, **record}
        files = {
            p.name: round(p.stat().st_size / 2**20, 2) for p in sorted(self.out.iterdir()) if p.is_file()
        }
        report = {
            "dry_run": self.args.dry_run,
            "budget_s": self.budget.total,
            "wheels": {"installed": self.wheels, "install_s": self.install_s, "error": self.install_error},
            "elapsed_s": round(time.time() - self.start, 1),
            "sections": sections,
            "files": files,
        }
        tmp = self.out / "gpu_run.json.tmp"
        tmp.write_text(json.dumps(report, indent=2, default=str))
        tmp.replace(self.out / "gpu_run.json")
        return report

    def run(self) -> dict[str, Any]:
        b = self.budget
        wanted = set(self.args.sections.split(","))
        data = None
        if "train" in wanted:  # the scene cache renders on the CPU while the check runs
            # its own log (it runs beside the check); its record says how it went
            data = self.launch("data", b.check + b.bench + b.kd, self.work / "data.log")
        if "check" in wanted:
            self.section("check", min(b.check, self.left()))
        if "bench" in wanted:
            if data is not None and data[0].poll() is None:
                self._wait_data(data, until=time.time() + 30.0)
            self.section("bench", min(b.bench, self.left() - b.margin))
        if "bound" in wanted:
            self.section("bound", min(b.bound, self.left() - b.margin))
        if "kd" in wanted:
            self.section("kd", min(b.kd, self.left() - b.margin))
        if "train" in wanted:
            if data is not None:
                self._wait_data(data, until=time.time() + max(self.left() - b.margin, 0.0))
            train = self.left() - b.margin
            self.section("teacher", train * b.teacher_share)
            self.section("student", self.left() - b.margin)
        report = self.merge()
        print(format_summary(report), flush=True)
        return report

    def _wait_data(self, data: tuple[subprocess.Popen[bytes], float], until: float) -> None:
        proc, deadline = data
        if "rc" in self.runs.get("data", {}):
            return
        if proc.poll() is None and time.time() < until:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=until - time.time())
        if proc.poll() is not None or time.time() >= deadline:
            self.finish("data", proc, deadline)


def _setting(text: str) -> tuple[str, Any]:
    """``name=value`` with a JSON value (a bare word is a string)."""
    from . import gpu_train

    name, _, value = text.partition("=")
    if name not in {f.name for f in dataclasses.fields(gpu_train.TrainSettings)}:
        raise SystemExit(f"error: --train {text}: TrainSettings has no field {name!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def format_summary(report: dict[str, Any]) -> str:
    """The short table printed last (the device tool returns the end of the output)."""
    lines = [
        f"GPU run {'(dry run) ' if report['dry_run'] else ''}{report['elapsed_s']:.0f} s of {report['budget_s']:.0f} s"
    ]
    for name, s in report["sections"].items():
        status = s.get("status") or s.get("skipped") or "?"
        extra = s.get("error", "")
        lines.append(f"  {name:8s} {status:8s} rc={s.get('rc', '-')} {s.get('wall_s', '-')} s {extra}")
    check = report["sections"].get("check", {})
    info = check.get("info", {})
    if info:
        lines.append(f"  gpu: {info.get('gpu', 'none')}  {info.get('nvidia_smi', '')}")
        lines.append(f"  gpu tests: {check.get('gpu_tests', {}).get('summary', '')}")
    for row in report["sections"].get("bench", {}).get("summary", []):
        if row["case"] in ("stock", "ours_cached", "ours_new", "ours_control"):
            lines.append(
                f"  {row['task']:34s} {row['steps']} step(s) {row['case']:12s} {row['total_ms']:9.2f} ms"
                + (f"  {row['vs_stock']:.3f}x stock" if row.get("vs_stock") else "")
            )
    lines += _bound_summary(report["sections"].get("bound", {}).get("rows", {}))
    for phase in ("kd", "teacher", "student"):
        s = report["sections"].get(phase, {})
        if "pairs" in s:
            lines.append(f"  kd pairs: {s['pairs']}")
        if "start_step" in s:
            last = s.get("last") or (s.get("calls") or s.get("chunks") or [{}])[-1].get("last", {})
            lines.append(
                f"  {phase}: step {s.get('start_step')} -> {s.get('end_step', '?')}, last log {last}"
            )
    lines.append("  files: " + ", ".join(f"{k} ({v} MiB)" for k, v in report["files"].items()))
    return "\n".join(lines)


def _bound_summary(rows: dict[str, Any]) -> list[str]:
    """One line per engine and step count of the bound-graph rows: total time, VRAM, pixel diff."""
    lines = []
    if "binding" in rows:
        lines.append(f"  bound {rows['arch']}: binding {rows['binding'].get('seconds', 0):.1f} s")
    for name, entry in rows.items():
        if not isinstance(entry, dict) or not ("rows" in entry or "error" in entry):
            continue
        if "error" in entry:
            lines.append(f"  bound {name:14s} error: {str(entry['error'])[:160]}")
            continue
        for n, row in entry["rows"].items():
            total = row["stages_s"]["total_ms"]
            diff = row.get("max_pixel_diff_vs_pytorch", "-")
            vram = entry.get("vram_peak_mib") or row.get("vram_peak_mib")
            lines.append(
                f"  bound {name:14s} {n} step(s) {total:9.2f} ms  max pixel diff {diff}  VRAM {vram} MiB"
            )
    return lines


def format_report(report: dict[str, Any]) -> str:
    """The benchmark tables as Markdown for docs/BENCHMARKS.md, each naming the card and command."""
    info = report["sections"].get("check", {}).get("info", {})
    smi = str(info.get("nvidia_smi") or "").split(", ")
    card = f"{info.get('gpu', 'no GPU')}" + (f" (driver {smi[1]})" if len(smi) > 1 else "")
    versions = info.get("versions", {})
    soft = ", ".join(f"{k} {v['version']}" for k, v in versions.items() if isinstance(v, dict))
    lines = [f"Card: {card}; {soft}", "Command: `scripts/gpu_run.sh` (docs/GPU_RUN.md)", ""]
    for name, task in report["sections"].get("bench", {}).get("tasks", {}).items():
        lines.append(f"### {name}")
        if "table" in task:
            lines += [task["table"], ""]
            for key in ("parity_vs_stock", "parity_vs_eager"):
                if key in task:
                    lines.append(f"{key.replace('_', ' ')}: {json.dumps(task[key])}")
            if task.get("memory"):
                lines.append(f"memory: {json.dumps(task['memory'])}")
        for key in ("without_controlnet", "with_controlnet"):
            if isinstance(task.get(key), dict):
                lines += [f"ONNX {key.replace('_', ' ')}:", task[key].get("table", ""), ""]
        for key in ("skipped", "error"):
            if key in task:
                lines.append(f"{key}: {task[key]}")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- prepare
def _tree_mib(root: Path) -> float:
    """MiB of what the device tool sends: tracked and untracked-not-ignored files."""
    r = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=root, capture_output=True, check=True
    )
    total = 0
    for name in r.stdout.decode().split("\0"):
        path = root / name
        if name and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total / 2**20


def _dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


WHEELS = ("diffusers", "platformdirs")
"""Our run needs these and the device machine's image lacks them (the rest is there: torch,
transformers, accelerate, onnxruntime, safetensors, huggingface_hub, tokenizers, Pillow...).
diffusers' own requirement importlib_metadata is only imported before Python 3.8 (and its 10.x
needs lazy-importer, which the image lacks too), so it stays behind."""


def download_wheels(dest: Path) -> list[str]:
    """The versions installed here of `WHEELS`, as pure-Python wheels for the device's Python 3.12."""
    from importlib.metadata import version

    dest.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={version(name)}" for name in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64"]
    cmd += ["--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(dest), *specs]
    subprocess.run(cmd, check=True)
    return sorted(p.name for p in dest.glob("*.whl"))


COMMITTED_TEACHER = "models/sprint-shapes-teacher"
"""Where the repository keeps the packaged teacher (issue #14), which travels with the tree."""


def _carry_vae(vae: Path, carry: Path) -> bool:
    """Copy the VAE folder ``vae`` (config + weights) to ``carry/vae``; False when it is not there."""
    if not (vae / "config.json").is_file():
        return False
    (carry / "vae").mkdir(exist_ok=True)
    for f in vae.iterdir():
        if f.suffix in (".json", ".safetensors"):
            (carry / "vae" / f.name).write_bytes(f.read_bytes())
    return True


def _in_root(path: str | Path, root: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else root / path


def _travels(root: Path, rel: Path) -> bool:
    """Whether git sends ``root/rel`` (tracked, or untracked and not ignored)."""
    r = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", rel.as_posix()],
        cwd=root,
        capture_output=True,
        check=True,
    )
    return bool(r.stdout.strip())


def _same_vae(a: Path, b: Path) -> bool:
    """Whether the VAE folders ``a`` and ``b`` hold the same model: the same config (the ``_``
    entries diffusers adds aside) and byte-identical weight files (`core.files.file_sha256`; a VAE
    saved again may differ in its bytes only, and is then carried: safe, 2.8 MiB)."""
    from ..core.files import file_sha256

    def config(folder: Path) -> dict[str, Any]:
        return {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k[0] != "_"}

    def weights(folder: Path) -> dict[str, str]:
        return {p.name: file_sha256(p) for p in folder.glob("*.safetensors")}

    return config(a) == config(b) and weights(a) == weights(b)


def _carry_teacher_folder(folder: Path, carry: Path, root: Path) -> dict[str, Any]:
    """``carry/teacher-folder.json`` for a packaged teacher in the tree; the VAE its run names in
    ``carry/vae`` when that is here and not the folder's own ``vae/`` (the run then reads that one
    from the tree: the same encoder, so the same latent space)."""
    from .checkpoints import CarryError, teacher_training
    from .gpu_train import FOLDER_FILE

    training = teacher_training(folder)
    try:
        rel = folder.resolve().relative_to(root.resolve())
    except ValueError:
        raise CarryError(f"{folder} is not inside {root}, the tree that travels") from None
    if not _travels(root, rel / "model_index.json"):
        raise CarryError(f"{folder} is ignored by git, so it does not travel with the tree")
    vae = _in_root(training.get("config", {}).get("vae", "runs/vae/vae"), root)
    own = folder / "vae"
    if (vae / "config.json").is_file() and not ((own / "config.json").is_file() and _same_vae(vae, own)):
        _carry_vae(vae, carry)
        vae_note = f"carried from {vae}"
    else:
        vae_note = f"{rel.as_posix()}/vae in the tree"
    record = {"folder": rel.as_posix(), "training": training}
    (carry / FOLDER_FILE).write_text(json.dumps(record, indent=2))
    return {"folder": rel.as_posix(), "step": training.get("step"), "vae": vae_note, "MiB": 0.0}


def prepare(args: argparse.Namespace) -> int:
    from .checkpoints import is_teacher_folder, mib, pack, shard_files
    from .gpu_train import FOLDER_FILE

    carry, root = Path(args.carry), Path(args.root)
    carry.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {}
    if not args.no_wheels:
        manifest["wheels"] = download_wheels(carry / "wheels")
    # a teacher or VAE of an earlier prepare must not start the run
    for old in [*shard_files(carry, "teacher"), carry / FOLDER_FILE]:
        old.unlink(missing_ok=True)
    shutil.rmtree(carry / "vae", ignore_errors=True)
    teacher = Path(args.teacher)
    vae = root / "runs/vae/vae"
    if is_teacher_folder(teacher):
        manifest["teacher"] = _carry_teacher_folder(teacher, carry, root)
        manifest["teacher_entries"] = f"none: the run starts from {manifest['teacher']['folder']} in the tree"
    elif (teacher / "checkpoint.pt").is_file():
        cfg = json.loads((teacher / "config.json").read_text()) if (teacher / "config.json").is_file() else {}
        vae = _in_root(cfg.get("vae", "runs/vae/vae"), root)
        if not _carry_vae(vae, carry):
            print(f"warning: the teacher's VAE {vae} is not there; the run uses the shipped model's VAE")
        packed = carry / "teacher.safetensors"
        pack(teacher, packed)
        manifest["teacher_entries"] = "raw + EMA"
        if _tree_mib(root) + _dir_mib(carry) > args.limit_mib:  # the EMA alone resumes both
            pack(teacher, packed, ["ema_transformer", "ema_text_encoder"])
            manifest["teacher_entries"] = "EMA only (raw + EMA was over the limit; raw resumes from the EMA)"
        manifest["teacher"] = {"from": str(teacher), "MiB": mib(packed)}
    else:
        hint = ""
        if is_teacher_folder(root / COMMITTED_TEACHER):
            hint = f" (--teacher {COMMITTED_TEACHER} starts it from the committed teacher)"
        print(f"note: no {teacher}/checkpoint.pt: the GPU teacher starts from scratch{hint}")
    tree, carried = _tree_mib(root), _dir_mib(carry)
    manifest.update(tree_mib=round(tree, 1), carry_mib=round(carried, 1), total_mib=round(tree + carried, 1))
    (carry / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(json.dumps(manifest, indent=2))
    if tree + carried > args.limit_mib:
        over = f"error: {tree + carried:.1f} MiB would travel, over the {args.limit_mib:.0f} MiB limit"
        if (teacher / "checkpoint.pt").is_file() and (
            root / COMMITTED_TEACHER / "model_index.json"
        ).is_file():
            over += (
                f"; the tree holds the teacher as {COMMITTED_TEACHER}: package this run into it"
                f" (sprint distill package-teacher --vae {vae} --teacher {teacher} --out {COMMITTED_TEACHER})"
                f" and prepare with --teacher {COMMITTED_TEACHER}, which carries no teacher weights"
            )
        print(over, file=sys.stderr)
        return 2
    return 0


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sprint_desktop.devtools.gpu_run", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the whole run (scripts/gpu_run.sh)")
    r.add_argument("--dry-run", action="store_true", help="every section at tiny sizes on the CPU")
    r.add_argument("--out", default=os.environ.get("OUT") or "gpu-out")
    r.add_argument("--carry", default="gpu-carry", help="what scripts/gpu_prepare.sh filled")
    r.add_argument(
        "--work", help="scratch folder, the wheels installed there too (default: a new one under /tmp)"
    )
    r.add_argument(
        "--budget", type=float, help="seconds for the whole run (default 555; dry run 900, a safety net)"
    )
    r.add_argument(
        "--sections",
        default="check,kd,train",
        help="of check, bench, bound, kd, train (data + teacher + student), in that order",
    )
    r.add_argument(
        "--teacher-share",
        type=float,
        default=0.6,
        help="the teacher's share of the training time (1: a teacher-only run; the student then gets what is left)",
    )
    r.add_argument(
        "--train",
        action="append",
        metavar="FIELD=VALUE",
        help="change a training setting (devtools.gpu_train.TrainSettings), e.g. teacher_iters=8000",
    )
    s = sub.add_parser("section", help="one section (started by run)")
    s.add_argument("name")
    s.add_argument("--work", required=True)
    s.add_argument("--carry", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--deadline", type=float, required=True)
    s.add_argument("--dry-run", action="store_true")
    rep = sub.add_parser("report", help="a returned gpu_run.json's benchmark tables as Markdown")
    rep.add_argument("json")
    p = sub.add_parser("prepare", help="fill gpu-carry/ (scripts/gpu_prepare.sh)")
    p.add_argument("--carry", default="gpu-carry")
    p.add_argument(
        "--teacher",
        default="runs/teacher",
        help=f"the run folder whose checkpoint.pt travels, or a packaged teacher in the tree ({COMMITTED_TEACHER}) to start from",
    )
    p.add_argument("--root", default=".", help="the repository that travels (its size counts)")
    p.add_argument("--no-wheels", action="store_true", help="skip downloading the wheels")
    p.add_argument("--limit-mib", type=float, default=CARRY_LIMIT_MIB)
    args = parser.parse_args(argv)
    if args.cmd == "section":
        return run_section(
            args.name, Path(args.work), Path(args.carry), Path(args.out), args.deadline, args.dry_run
        )
    if args.cmd == "report":
        try:
            print(format_report(json.loads(Path(args.json).read_text())))
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: cannot read {args.json}: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "prepare":
        from .checkpoints import CarryError

        try:
            return prepare(args)
        except (CarryError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.budget is None:
        args.budget = 900.0 if args.dry_run else 555.0
    if args.work is None:
        import tempfile

        args.work = tempfile.mkdtemp(prefix="sprint-gpu-run-")
    report = Runner(args).run()
    failed = [n for n, s in report["sections"].items() if s.get("status") != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Section 3 of the GPU run: the Sprint-Shapes campaign on a borrowed GPU, in chunks of about a
minute, each ending in a checkpoint whose weights go to ``$OUT`` at once, so whatever finishes
before the machine goes back comes back.

Four phases, each its own process (accelerate keeps one mixed-precision state per process):
- ``data``: the training scenes' latent cache (`distill.data`), rendered by a pool of processes
  (one core renders ~300 scenes/s; a 40,000-scene cache would cost minutes on one) and encoded on
  the GPU; it runs while the check section does, the GPU being idle then.
- ``teacher``: resumes from the packed CPU checkpoint carried in (`devtools.checkpoints`), or from
  the packaged teacher folder of the tree that ``teacher-folder.json`` names, at the GPU batch and
  learning rate, by calling `distill.train_teacher.train` with ``iters`` one chunk
  further each time; after each chunk its EMA and raw weights are packed into ``$OUT``.
- ``student``: the hybrid (sCM + LADD) student from that teacher, the same way.
- ``kd``: before the teacher, the shipped student's first step regressed onto pairs the carried
  teacher samples on the GPU, hundreds of thousands at once (`kd_phase`, `distill.pairs`).

The chunk length is measured, not guessed: the first chunk is short (``probe`` iterations), later
ones aim at ``interval_s`` of wall time each (load + iterations + evaluation + checkpoint) and the
last one is cut to end before the phase's deadline.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import CarryError, mib, pack, read, scale_lr, unpack, unpack_folder
from .collapse import GOOD, CollapseGuard
from .section import Section

RETURN_LIMIT_MIB = 16.0
"""The largest file that comes back from the device machine."""
WEIGHT_FILES = 6
"""Files of weights that may come back: 8 in all, less ``gpu_run.json`` and ``gpu_run.log``."""
HUGE = 10**9
ROOT = Path(__file__).resolve().parents[2]
FOLDER_FILE = "teacher-folder.json"
"""In the carry folder: the packaged teacher folder of the tree that the run starts from (its path
relative to the repository root) and its ``training.json``; no weights travel for it."""


@dataclass
class TrainSettings:
    """How the campaign runs on the GPU (``dry_run`` shrinks everything to CPU size)."""

    teacher_batch: int = 256
    student_batch: int = 128
    student_adv_warmup: int = 500  # the hybrid's LADD weight rises from 0 over these steps (issue #14)
    lr_rule: str = "sqrt"  # learning rate x sqrt(GPU batch / CPU batch); "same": unchanged
    interval_s: float = 60.0  # one chunk (and so one saved checkpoint) about every minute
    probe: int = 50  # iterations of the first chunk, which measures the speed
    eval_images: int | None = None  # None: the run's own setting
    eval_steps: int | None = None
    val_images: int | None = None  # the teacher's fixed validation batch (None: the run's)
    cache: int | None = None  # None: the run's own setting, or default_cache where it has none
    default_cache: int = 20000  # fresh scenes every step would starve the GPU (one core renders ~300/s)
    workers: int = 0  # render processes for the cache (0: the CPU count)
    max_chunks: int = HUGE
    student_max_chunks: int = HUGE
    probe_s: float = 30.0  # the teacher's first call stops after this long, to measure its speed
    stop_margin_s: float = 15.0  # the teacher stops this long before its deadline (checkpoint, send)
    teacher_iters: int | None = None  # None: the campaign's (the carried config's) iters
    teacher_extra: int | None = None  # train this many iterations past the carried step instead
    # an EMA validation loss over collapse_ratio x its best is a collapse (devtools.collapse); the
    # teacher then resumes from its last good checkpoint at lr x collapse_lr
    collapse_ratio: float = 1.5
    collapse_lr: float = 0.5
    log_every: int = 25
    seed: int = 0
    # the first-step regression on the teacher's ODE pairs (`kd_phase`, `distill.pairs`)
    kd_pairs: int = 300_000  # at most; building stops at kd_build_share of the section's time
    kd_build_share: float = 0.4
    kd_pair_batch: int = 1000  # pairs the teacher samples at once
    kd_pair_steps: int = 20
    kd_batch: int = 256
    kd_cpu_batch: int = 32  # the batch kd_lr was found at (docs/TRAINING.md, session 11)
    kd_lr: float = 2e-4
    kd_init: str = "models/sprint-shapes/transformer"  # "": the teacher's copy
    kd_freeze: str = r"attn2\.to_v\.bias"
    kd_iters: int = HUGE  # at most this many after the probe (else: as many as the time allows)
    kd_pair_filter: str = "judge"  # the student's --pair-filter: "judge" (judged in a pool as built) or ""
    kd_pair_balance: bool = True  # the student's --pair-balance (session 12's shipped student)
    kd_extra_share: float = 0.0  # this share of the shards from the captions of kd_extra_family alone
    kd_extra_family: str = "relation"  # the student's --extra-family (its --extra-pairs: those shards)

    @classmethod
    def dry(cls) -> TrainSettings:
        return cls(
            teacher_batch=2,
            student_batch=2,
            student_adv_warmup=4,
            interval_s=0.0,
            probe=1,
            eval_images=2,
            eval_steps=1,
            val_images=4,
            cache=16,
            workers=2,
            max_chunks=1,
            student_max_chunks=1,
            probe_s=0.0,
            stop_margin_s=0.0,
            # Enough steps that the probe (SIGTERM at once) always stops before its end, at whatever
            # step the machine's speed gives: the main call then resumes from that checkpoint.
            teacher_extra=24,
            log_every=1,
            kd_pairs=3000,  # shards of 1,000 (`distill.pairs.SHARD`): a deadline between them is tested
            kd_pair_steps=2,
            kd_batch=2,
            kd_init="",  # the tiny teacher's copy: the shipped student has another shape
            kd_iters=3,
            kd_pair_filter="",  # the tiny teacher's samples show nothing: none would pass
        )


def lr_factor(rule: str, gpu_batch: int, cpu_batch: int) -> float:
    """Learning-rate multiplier for a larger batch: square-root scaling (Adam), or none."""
    if rule == "same":
        return 1.0
    if rule != "sqrt":
        raise ValueError(f"lr rule must be sqrt or same, got {rule!r}")
    return math.sqrt(max(gpu_batch, 1) / max(cpu_batch, 1))


# ------------------------------------------------------------------------------------- the data
def _render(scene: Any) -> Any:
    from ..distill.world import render

    return render(scene)


def build_cache(vae_dir: Path, n: int, seed: int, workers: int, device: str) -> Path:
    """The latent cache `distill.data.load_or_build` would make for (``vae_dir``, ``n``, ``seed``):
    the same scenes (one seeded sampler, in order), rendered by ``workers`` processes, encoded on
    ``device``; written in its format under its key. Returns the cache's path (kept if current)."""
    import multiprocessing
    import os

    import numpy as np
    import torch

    from ..distill import data
    from ..distill.world import sample_scene

    path = data.cache_path(vae_dir, n, seed)
    key = {"vae": data.vae_fingerprint(vae_dir), "n": n, "seed": seed}
    if path.exists() and json.loads(torch.load(path, weights_only=True)["key"]) == key:
        return path
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, held_out=False) for _ in range(n)]
    # Spawned, not forked: a fork copies whatever locks the parent's threads (torch's pools, Qt,
    # a test's HTTP server) hold at that moment, and a clean-clone CI run hung here for 80 minutes.
    with multiprocessing.get_context("spawn").Pool(workers or os.cpu_count() or 1) as pool:
        images = pool.map(_render, scenes, chunksize=64)
    from diffusers import AutoencoderDC

    from ..distill.train_vae import to_tensor

    vae = AutoencoderDC.from_pretrained(vae_dir).to(device).eval()
    latents = []
    with torch.no_grad():
        for start in range(0, n, 256):
            batch = to_tensor(np.stack(images[start : start + 256])).to(device)
            latents.append(vae.encode(batch).latent.float().cpu())
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "key": json.dumps(key),
            "latents": torch.cat(latents),
            "captions": json.dumps([s.caption for s in scenes]),
        },
        tmp,
    )
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------ the phases
def _config(cls: Any, base: dict[str, Any], **overrides: Any) -> Any:
    """``cls`` (a config dataclass) from a run's saved config, keeping only the fields it has."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in base.items() if k in names}, **overrides})


def _last_record(run: Path) -> dict[str, Any]:
    log = run / "log.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return json.loads(lines[-1]) if lines else {}


def _step(run: Path, name: str = "checkpoint.pt") -> int:
    import torch

    ckpt = run / name
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"]) if ckpt.exists() else 0


def send_back(
    run: Path,
    out: Path,
    sets: list[tuple[str, list[str]]],
    reserve: int = 0,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pack ``run``'s checkpoint (``state`` when given, already loaded, else its ``checkpoint.pt``)
    into ``out``, one set of files per (stem, module entries), each file under the return limit, in
    order, while they fit in the weight files that may come back (``reserve`` of them kept for a
    later phase). Returns what was sent (MiB per file) or why not."""
    import torch

    from .checkpoints import shard_files

    sent: dict[str, Any] = {}
    staging = run / "send"
    if state is None:
        state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    for stem, entries in sets:
        shutil.rmtree(staging, ignore_errors=True)
        files = pack(
            run, staging / f"{stem}.safetensors", entries, checkpoint=state, max_mib=RETURN_LIMIT_MIB - 0.5
        )
        others = [p for p in out.glob("*.safetensors") if p not in shard_files(out, stem)]
        slots = WEIGHT_FILES - reserve - len(others)
        if len(files) > slots:
            sent[stem] = f"not sent: needs {len(files)} files, {max(slots, 0)} left of {WEIGHT_FILES}"
            continue
        for old in shard_files(out, stem):
            old.unlink()
        for f in files:
            shutil.move(str(f), out / f.name)
            sent[f.name] = mib(out / f.name)
    shutil.rmtree(staging, ignore_errors=True)
    return sent


def run_chunks(
    section: Section,
    train: Any,
    cfg: Any,
    settings: TrainSettings,
    deliver: Any,
) -> None:
    """Call ``train(cfg with iters = step + chunk)`` until the deadline, ``deliver()`` after each."""
    run = Path(cfg.out)
    step = _step(run)
    chunk, overhead, s_it = settings.probe, None, None
    chunks: list[dict[str, Any]] = []
    section.set("start_step", step)
    while len(chunks) < settings.max_chunks:
        left = section.left() - 5.0  # keep a few seconds for the last delivery
        if s_it is not None and overhead is not None:
            fits = int((left - overhead) / s_it)  # iterations that still end before the deadline
            if fits < 1:
                break
            chunk = min(max(int((settings.interval_s - overhead) / s_it), settings.probe), fits)
        t0 = time.time()
        train(dataclasses.replace(cfg, iters=step + chunk))
        wall = time.time() - t0
        step = _step(run)
        rec = _last_record(run)
        s_it = max(float(rec.get("s_per_it", wall / chunk)), 1e-4)
        overhead = max(wall - chunk * s_it, 0.0)
        chunks.append({"iters": chunk, "wall_s": round(wall, 1), "step": step, "last": rec})
        section.set("chunks", chunks)
        section.set("sent", deliver())
    section.set("end_step", step)


def _stop_when_asked(
    before: Any, after_s: float, at: float, done: threading.Event, now: threading.Event | None = None
) -> None:
    """Once the training loop has installed its own SIGTERM handler (a new one, not ``before``),
    wait ``after_s`` more seconds (or until the time ``at``, or until ``now`` is set), then send this
    process SIGTERM: the loop checkpoints after its current step and returns
    (`distill.train_teacher.StopRequest`)."""
    seen = None
    while not done.wait(0.1):
        handler = signal.getsignal(signal.SIGTERM)
        if seen is None and handler is not before and hasattr(getattr(handler, "__self__", None), "asked"):
            seen = time.time()
        asked = now is not None and now.is_set()
        if seen is not None and (asked or time.time() >= min(seen + after_s, at)):
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _deliver_new_checkpoints(run: Path, deliver: Any, section: Section, done: threading.Event) -> None:
    """Send each checkpoint the loop writes (every ``eval_every`` steps) while it goes on."""
    ckpt = run / "checkpoint.pt"
    last = ckpt.stat().st_mtime if ckpt.exists() else None
    while not done.wait(1.0):
        now = ckpt.stat().st_mtime if ckpt.exists() else None
        if now != last:
            last = now
            section.set("sent", deliver())


def _records_until(
    run: Path, step: int, after_line: int, wait_s: float = 15.0
) -> tuple[list[dict[str, Any]], int]:
    """The log records after line ``after_line`` up to the one of the checkpoint at ``step`` (the
    loop writes it just after the checkpoint: wait up to ``wait_s``); [] if it did not come. Also
    returns the number of lines read, where the next search starts."""
    log = run / "log.jsonl"
    until = time.time() + wait_s
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        records = [json.loads(line) for line in lines[after_line:]]
        for i, rec in enumerate(records):
            if rec.get("step") == step:
                return records[: i + 1], after_line + i + 1
        if time.time() >= until:
            return [], after_line
        time.sleep(0.2)


def train_watched(
    section: Section,
    train: Any,
    cfg: Any,
    deliver: Any,
    after_s: float,
    at: float,
    now: threading.Event | None = None,
) -> None:
    """``train(cfg)`` with two helper threads: one sends each checkpoint it writes at once
    (`_deliver_new_checkpoints`), the other stops it by SIGTERM ``after_s`` after its loop starts,
    at the time ``at``, or when ``now`` is set (`_stop_when_asked`)."""
    done, before = threading.Event(), signal.getsignal(signal.SIGTERM)
    threads = [
        threading.Thread(target=_stop_when_asked, args=(before, after_s, at, done, now), daemon=True),
        threading.Thread(
            target=_deliver_new_checkpoints, args=(Path(cfg.out), deliver, section, done), daemon=True
        ),
    ]
    for t in threads:
        t.start()
    try:
        train(cfg)
    finally:
        done.set()
        for t in threads:
            t.join()


def _resume_from_good(run: Path, factor: float) -> None:
    """Make the last good checkpoint the one the loop resumes from, every learning rate in it x
    ``factor``."""
    import torch

    from ..distill.train_teacher import save_checkpoint

    state = torch.load(run / GOOD, map_location="cpu", weights_only=True)
    scale_lr(state, factor)
    save_checkpoint(run / "checkpoint.pt", state)


def run_stoppable(section: Section, train: Any, cfg: Any, settings: TrainSettings, deliver: Any) -> None:
    """The teacher on the GPU in calls of ``train`` (one learning-rate schedule, ``cfg.iters`` the
    campaign's): a probe stopped by SIGTERM after ``probe_s`` to measure the speed, then one call
    that evaluates and checkpoints about every ``interval_s`` (each checkpoint sent at once) and is
    stopped ``stop_margin_s`` before the deadline (the loop then saves its EMA as the pretrained
    folders the student starts from). A checkpoint whose evaluation shows a collapse
    (`collapse.CollapseGuard`) is not sent: the call is stopped at once and the next resumes from
    the last good checkpoint at ``collapse_lr`` x the learning rate, while time is left."""
    run = Path(cfg.out)
    calls: list[dict[str, Any]] = []
    guard = CollapseGuard(settings.collapse_ratio)
    collapsed = threading.Event()
    state: dict[str, Any] = {"sent": {}, "lines": 0, "step": None}
    section.set("start_step", _step(run))

    def guarded() -> dict[str, Any]:
        """Check the newest checkpoint, keep it as the good one and send it, or hold it back."""
        if collapsed.is_set() or not (run / "checkpoint.pt").exists():
            return dict(state["sent"])  # until the next resume, nothing the loop writes is sent
        candidate = run / "candidate.pt"  # a copy: the loop may write the next checkpoint meanwhile
        shutil.copyfile(run / "checkpoint.pt", candidate)
        step = _step(run, candidate.name)
        if step == state["step"]:  # seen already (by the delivery thread, then at the call's end)
            return dict(state["sent"])
        state["step"] = step
        # every evaluation since the last check, in order (the best so far counts them all); the
        # checkpoint's own record decides
        records, state["lines"] = _records_until(run, step, state["lines"])
        if [guard.collapsed(rec) for rec in records][-1:] == [True]:
            collapsed.set()
            section.set("collapses", guard.collapses)
            return dict(state["sent"])
        candidate.replace(run / GOOD)
        state["sent"] = deliver()
        return dict(state["sent"])

    def call(c: Any, after_s: float, at: float) -> dict[str, Any]:
        t0 = time.time()
        train_watched(section, train, c, guarded, after_s, at, collapsed)
        rec = _last_record(run)
        calls.append(
            {
                "eval_every": c.eval_every,
                "lr": c.lr,
                "wall_s": round(time.time() - t0, 1),
                "step": _step(run),
                "last": rec,
            }
        )
        section.set("calls", calls)
        section.set("sent", guarded())
        return rec

    if _step(run) < cfg.iters:
        rec = call(cfg, settings.probe_s, section.deadline - settings.stop_margin_s)
        s_it = max(float(rec.get("s_per_it", 1.0)), 1e-4)
        every = max(1, round(settings.interval_s / s_it))
        while (
            _step(run) < cfg.iters
            and section.left() > settings.stop_margin_s + 10 * s_it
            and (not collapsed.is_set() or (run / GOOD).exists())
        ):
            if collapsed.is_set():
                cfg = dataclasses.replace(cfg, lr=cfg.lr * settings.collapse_lr)
                _resume_from_good(run, settings.collapse_lr)
                state["step"] = None  # the steps after it come again, with other weights
                collapsed.clear()
            call(dataclasses.replace(cfg, eval_every=every), HUGE, section.deadline - settings.stop_margin_s)
            if not collapsed.is_set():
                break
    if collapsed.is_set() and (run / GOOD).exists():
        # no time left to train on: the pretrained folders the student reads come from the good one
        _resume_from_good(run, 1.0)
        train(dataclasses.replace(cfg, iters=_step(run)))
    elif not (run / "transformer" / "config.json").is_file():
        # no pretrained folders yet (nothing was trained): a call with nothing to train saves them
        train(dataclasses.replace(cfg, iters=_step(run)))
    section.set("end_step", _step(run))


def carried_config(carry: Path) -> dict[str, Any]:
    """The CPU run's ``config.json`` that came with the teacher: from the packed
    ``teacher.safetensors``, else from ``teacher-folder.json`` (its folder's ``training.json``),
    else nothing (the teacher starts from scratch)."""
    carried = carry / "teacher.safetensors"
    if carried.is_file():
        _, meta = read([carried])
        return dict(json.loads(meta["files"].get("config.json", "{}")))
    if (carry / FOLDER_FILE).is_file():
        return dict(json.loads((carry / FOLDER_FILE).read_text())["training"].get("config", {}))
    return {}


def teacher_base(carry: Path) -> dict[str, Any]:
    """The teacher's config on the GPU before its GPU changes: `TeacherConfig`'s defaults under the
    carried CPU run's `carried_config` (the data and teacher phases read the same)."""
    from ..distill.train_teacher import TeacherConfig

    return {**dataclasses.asdict(TeacherConfig()), **carried_config(carry)}


def start_teacher(
    carry: Path, run: Path, lr: float, base: dict[str, Any], root: Path = ROOT
) -> dict[str, Any] | str | None:
    """Make ``run`` the carried teacher at learning rate ``lr``: `unpack` the packed
    ``teacher.safetensors``, else `unpack_folder` the tree's folder that ``teacher-folder.json``
    names (relative to ``root``). Returns the section's record of it (``base``: the CPU config),
    "already unpacked" when ``run`` has a checkpoint, None when no teacher was carried."""
    carried, pointer = carry / "teacher.safetensors", carry / FOLDER_FILE
    if not carried.is_file() and not pointer.is_file():
        return None
    if (run / "checkpoint.pt").exists():
        return "already unpacked"
    if carried.is_file():
        unpack([carried], run, lr=lr)
        return {"file": str(carried), "MiB": mib(carried), "step": _step(run), "cpu_config": base}
    rel = json.loads(pointer.read_text())["folder"]
    unpack_folder(root / rel, run, lr=lr)
    return {"folder": rel, "MiB": 0.0, "step": _step(run), "cpu_config": base}


def teacher_phase(
    section: Section, carry: Path, work: Path, out: Path, settings: TrainSettings, device: str
) -> None:
    from ..distill.train_teacher import TeacherConfig
    from ..distill.train_teacher import train as train_teacher

    vae = prepare_vae(carry, work)
    run = work / "runs" / "teacher"
    base = teacher_base(carry)
    factor = lr_factor(settings.lr_rule, settings.teacher_batch, int(base["batch"]))
    section.set("carried", start_teacher(carry, run, float(base["lr"]) * factor, base))
    start = _step(run)
    iters = (
        start + settings.teacher_extra
        if settings.teacher_extra
        else settings.teacher_iters or int(base["iters"])
    )
    cfg = _config(
        TeacherConfig,
        base,
        vae=str(vae),
        out=str(run),
        iters=iters,
        batch=settings.teacher_batch,
        lr=float(base["lr"]) * factor,
        eval_every=HUGE,  # the probe evaluates only when it reaches iters; the main call sets its own
        log_every=settings.log_every,
        seed=int(base.get("seed", settings.seed)),
        **_eval_overrides(settings, base, teacher=True),
        cache=cache_size(settings, base),
        **_gpu_overrides(base),
    )
    section.set("config", dataclasses.asdict(cfg))
    if start >= iters:
        section.set(
            "note", f"the carried teacher is at step {start}, its iters are {iters}: nothing to train"
        )
    ema = ["ema_transformer", "ema_text_encoder"]
    raw = ["transformer", "text_encoder"]

    def deliver() -> dict[str, Any]:
        # The EMA first; the raw weights only if the student (about the EMA's size) still fits after.
        # Both from the last checkpoint that passed `run_stoppable`'s collapse check, loaded once.
        import torch

        restore_cpu_settings(run, base)
        good = torch.load(run / GOOD, map_location="cpu", weights_only=True)
        sent = send_back(run, out, [("teacher-ema", ema)], state=good)
        student_files = sum(1 for k in sent if k.endswith(".safetensors"))
        return {**sent, **send_back(run, out, [("teacher-raw", raw)], reserve=student_files, state=good)}

    run_stoppable(section, train_teacher, cfg, settings, deliver)


CPU_SETTINGS = ("vae", "eval_every", "log_every", "cpu_budget_min", "threads")
"""The carried run's settings that the GPU changed for itself alone (its VAE path, its evaluation
rhythm, no CPU budget or thread cap): what comes back carries the CPU's again, so that a CPU run
resumed from it evaluates, logs and finds its VAE as before. Batch and learning rate stay the
GPU's (`checkpoints unpack --lr --config batch=` sets those); ``out`` is set by `unpack`."""


def restore_cpu_settings(run: Path, base: dict[str, Any]) -> None:
    """Rewrite ``run/config.json`` (what `send_back` packs) with the carried run's `CPU_SETTINGS`."""
    path = run / "config.json"
    if path.is_file():
        config = json.loads(path.read_text())
        config.update({k: base[k] for k in CPU_SETTINGS if k in base and k in config})
        path.write_text(json.dumps(config, indent=2))


def _gpu_overrides(base: dict[str, Any]) -> dict[str, Any]:
    """CPU-run settings that must not follow the run to the GPU: a CPU-minute budget (its clock
    counts on in the checkpoint) and a thread cap."""
    return {k: v for k, v in {"cpu_budget_min": 0.0, "threads": 0}.items() if k in base}


def student_phase(
    section: Section, carry: Path, work: Path, out: Path, settings: TrainSettings, device: str
) -> None:
    from ..distill.train_student import StudentConfig
    from ..distill.train_student import train as train_student

    vae = prepare_vae(carry, work)
    teacher = work / "runs" / "teacher"
    if not (teacher / "transformer" / "config.json").is_file():
        raise CarryError(f"no teacher in {teacher} (the teacher phase saved none): no student to train")
    teacher_cfg = json.loads((teacher / "config.json").read_text())
    base = dataclasses.asdict(StudentConfig())
    depth = int(json.loads((teacher / "transformer" / "config.json").read_text())["num_layers"])
    run = work / "runs" / "student-hybrid"
    cfg = _config(
        StudentConfig,
        base,
        teacher=str(teacher),
        vae=str(vae),
        out=str(run),
        mode="hybrid",
        batch=settings.student_batch,
        lr=base["lr"] * lr_factor(settings.lr_rule, settings.student_batch, base["batch"]),
        d_lr=base["d_lr"] * lr_factor(settings.lr_rule, settings.student_batch, base["batch"]),
        adv_warmup=settings.student_adv_warmup,
        eval_every=HUGE,
        log_every=settings.log_every,
        cache=cache_size(settings, teacher_cfg),
        seed=int(teacher_cfg.get("seed", settings.seed)),  # the teacher's cache is the student's
        disc_layers=disc_layers_for(depth, tuple(base["disc_layers"])),
        **_eval_overrides(settings, base, teacher=False),
    )
    section.set("config", dataclasses.asdict(cfg))
    run_chunks(
        section,
        train_student,
        cfg,
        dataclasses.replace(settings, max_chunks=settings.student_max_chunks),
        lambda: send_back(run, out, [("student-hybrid", ["student", "logvar", "disc"])]),
    )


def cache_size(settings: TrainSettings, run_config: dict[str, Any]) -> int:
    """Scenes in the latent cache: the setting, else the run's, else ``default_cache``."""
    if settings.cache is not None:
        return settings.cache
    return int(run_config.get("cache", 0)) or settings.default_cache


def disc_layers_for(depth: int, default: tuple[int, ...], reference: int = 8) -> tuple[int, ...]:
    """The discriminator's teacher blocks for a teacher ``depth`` blocks deep: the default's
    (chosen for ``reference`` blocks) at the same relative depths."""
    return tuple(sorted({min(depth - 1, round(i * depth / reference)) for i in default}))


def _eval_overrides(settings: TrainSettings, base: dict[str, Any], teacher: bool) -> dict[str, Any]:
    over: dict[str, Any] = {}
    if settings.eval_images is not None:
        over["eval_images"] = settings.eval_images
    if teacher and settings.eval_steps is not None:
        over["eval_steps"] = settings.eval_steps
    if teacher and settings.val_images is not None and "val_images" in base:
        over["val_images"] = settings.val_images
    return over


def prepare_vae(carry: Path, work: Path, root: Path = ROOT) -> Path:
    """The VAE the runs use: the carried one (``carry/vae``), else the one in the tree's teacher
    folder that ``teacher-folder.json`` names (prepare carries none when the run's VAE is that one),
    else the shipped model's; copied into the work folder (the latent cache is written beside it,
    never into the repository)."""
    src = carry / "vae"
    if not (src / "config.json").is_file() and (carry / FOLDER_FILE).is_file():
        src = root / json.loads((carry / FOLDER_FILE).read_text())["folder"] / "vae"
    if not (src / "config.json").is_file():
        src = root / "models" / "sprint-shapes" / "vae"
    dest = work / "runs" / "vae" / "vae"
    if not (dest / "config.json").is_file():
        shutil.copytree(src, dest)
    return dest


def data_phase(section: Section, carry: Path, work: Path, settings: TrainSettings, device: str) -> None:
    """The teacher's latent cache, built ahead (see `build_cache`)."""

    vae = prepare_vae(carry, work)
    base = teacher_base(carry)
    n = cache_size(settings, base)
    section.set("cache", n)
    if n > 0:
        t0 = time.time()
        path = build_cache(vae, n, int(base.get("seed", settings.seed)), settings.workers, device)
        section.set("path", str(path))
        section.set("build_s", round(time.time() - t0, 1))


# ------------------------------------------------------------------ the first-step regression (kd)
def kd_teacher(carry: Path, work: Path, root: Path = ROOT) -> Path:
    """The teacher whose pairs the kd student learns: the tree's teacher folder that
    ``teacher-folder.json`` names, else the carried packed teacher unpacked into the work folder,
    else the tree's ``models/sprint-shapes-teacher`` (the one the shipped student was made from)."""
    pointer, packed = carry / FOLDER_FILE, carry / "teacher.safetensors"
    if pointer.is_file():
        return root / json.loads(pointer.read_text())["folder"]
    if packed.is_file():
        run = work / "runs" / "kd-teacher"
        if not (run / "transformer" / "config.json").is_file():
            unpack([packed], run)
        return run
    return root / "models" / "sprint-shapes-teacher"


def shard_streams(total: int, share: float, family: str) -> list[tuple[str, int]]:
    """The order a GPU builds ``total`` shards in: (stream, shard) with the ``family`` stream's
    shards spread evenly at ``share`` of them, the stream of every family first (a build stopped
    at any time holds both in about that ratio)."""
    order, next_k = [], {"": 0, family: 0}
    for i in range(total):
        stream = family if share > 0 and math.floor((i + 1) * share) > math.floor(i * share) and i else ""
        order.append((stream, next_k[stream]))
        next_k[stream] += 1
    return order


def build_pairs(
    section: Section,
    teacher_dir: Path,
    vae_dir: Path,
    runs: Path,
    settings: TrainSettings,
    until: float,
    device: str,
) -> dict[str, int]:
    """Shards of the teacher's pairs in ``runs`` (where the kd student looks for them), built on
    ``device`` ``kd_pair_batch`` at a time, until ``kd_pairs`` or the time ``until``, ``kd_extra_share``
    of them from the ``kd_extra_family`` stream, each judged as it is built when the student filters
    them (``kd_pair_filter``: a pool of ``workers`` processes); returns the pairs ready per stream
    (whole shards; "": every family)."""
    import multiprocessing
    from contextlib import nullcontext

    from diffusers import AutoencoderDC

    from ..distill import data, pairs

    teacher, tokenizer, text_encoder = pairs.load_teacher(teacher_dir)
    teacher, text_encoder = teacher.to(device), text_encoder.to(device)
    judged = settings.kd_pair_filter == "judge"
    vae = AutoencoderDC.from_pretrained(vae_dir).to(device).eval() if judged else None
    vae_key = data.vae_fingerprint(vae_dir) if judged else ""
    order = shard_streams(
        math.ceil(settings.kd_pairs / pairs.SHARD), settings.kd_extra_share, settings.kd_extra_family
    )
    shards = Counter(stream for stream, _ in order)  # each stream's file names, the teacher hashed once
    paths = {
        stream: pairs.shard_paths(runs, teacher_dir, settings.seed, settings.kd_pair_steps, range(n), stream)
        for stream, n in shards.items()
    }
    t0, built, passed = time.time(), Counter[str](), 0
    spawn = multiprocessing.get_context("spawn")  # not forked: see build_cache
    with spawn.Pool(settings.workers or os.cpu_count() or 1) if judged else nullcontext() as pool:
        for stream, k in order:
            if built and time.time() >= until:
                break
            path = paths[stream][k]
            cache = pairs.load_or_build_shard(
                path,
                teacher,
                tokenizer,
                text_encoder,
                settings.seed,
                settings.kd_pair_steps,
                k,
                settings.kd_pair_batch,
                stream,
            )
            if judged:
                passed += int(pairs.load_or_judge(path, cache, vae, vae_key, pool).sum())
            built[stream] += pairs.SHARD
            wall = time.time() - t0
            record = {
                "built": built.total(),
                "extra": built[settings.kd_extra_family],
                "build_s": round(wall, 1),
            }
            record["pairs_per_s"] = round(built.total() / max(wall, 1e-6), 1)
            section.set("pairs", {**record, **({"passing": passed} if judged else {})})
    return dict(built)


def run_probe_then_cosine(
    section: Section, train: Any, cfg: Any, settings: TrainSettings, deliver: Any, most: int = HUGE
) -> None:
    """A probe of ``probe`` iterations at the constant rate (its warm-up; it measures the speed and
    writes the run's pretrained folder), then one call whose cosine decays the rate to 0 at the
    last iteration that ends ``stop_margin_s`` before the deadline (``most`` iterations at most),
    evaluating and checkpointing about every ``interval_s`` (each checkpoint sent at once); SIGTERM
    at the deadline is the safety net (the loop checkpoints and returns)."""
    run = Path(cfg.out)
    section.set("start_step", _step(run))
    t0 = time.time()
    train(
        dataclasses.replace(cfg, iters=_step(run) + settings.probe, lr_schedule="constant", eval_every=HUGE)
    )
    wall, step = time.time() - t0, _step(run)
    s_it = max(float(_last_record(run).get("s_per_it", wall / settings.probe)), 1e-4)
    overhead = max(wall - settings.probe * s_it, 0.0)  # loading the pairs and models, the final save
    fits = min(int((section.left() - settings.stop_margin_s - overhead) / s_it), most)
    section.set("probe", {"step": step, "wall_s": round(wall, 1), "s_per_it": s_it, "fits": fits})
    if fits >= 1:
        final = dataclasses.replace(
            cfg,
            iters=step + fits,
            lr_schedule="cosine",
            decay_start=step,
            eval_every=max(1, min(fits, round(settings.interval_s / s_it))),
        )
        train_watched(section, train, final, deliver, HUGE, section.deadline - settings.stop_margin_s)
    section.set("end_step", _step(run))
    section.set("last", _last_record(run))
    section.set("sent", deliver())


EMA_STUDENT = "ema_student"
"""The kd student's EMA in what comes back (`kd_state`)."""


def kd_phase(
    section: Section, carry: Path, work: Path, out: Path, settings: TrainSettings, device: str
) -> None:
    """The student's first step regressed onto the teacher's ODE pairs (`distill.pairs`), on
    hundreds of thousands of pairs the GPU builds in a minute or two (a CPU core makes ~20,000 an
    hour),
    from the shipped student (``kd_init``); its EMA comes back as ``student-kd.safetensors``
    (`checkpoints unpack` gives the transformer folder that ``sprint evaluate`` and packaging read)."""
    from ..distill.train_student import StudentConfig
    from ..distill.train_student import train as train_student

    vae = prepare_vae(carry, work)
    teacher = kd_teacher(carry, work)
    runs = work / "runs"
    start = time.time()
    until = start + settings.kd_build_share * (section.deadline - start)
    built = build_pairs(section, teacher, vae, runs, settings, until, device)
    run = runs / "student-kd"
    init = str(ROOT / settings.kd_init) if settings.kd_init else ""
    cfg = _config(
        StudentConfig,
        dataclasses.asdict(StudentConfig()),
        teacher=str(teacher),
        vae=str(vae),
        out=str(run),
        mode="kd",
        init=init,
        pairs=built.get("", 0),
        extra_pairs=built.get(settings.kd_extra_family, 0),
        extra_family=settings.kd_extra_family,
        pair_steps=settings.kd_pair_steps,
        pair_filter=settings.kd_pair_filter,
        pair_balance=settings.kd_pair_balance,
        batch=settings.kd_batch,
        lr=settings.kd_lr * lr_factor(settings.lr_rule, settings.kd_batch, settings.kd_cpu_batch),
        ema=0.995,
        warmup=min(50, settings.probe),
        tangent_warmup=0,
        freeze=settings.kd_freeze if init else "",
        log_every=settings.log_every,
        seed=settings.seed,
        **_eval_overrides(settings, {}, teacher=False),
    )
    section.set("config", dataclasses.asdict(cfg))
    run_probe_then_cosine(
        section,
        train_student,
        cfg,
        settings,
        lambda: send_back(run, out, [("student-kd", [EMA_STUDENT])], state=kd_state(run)),
        most=settings.kd_iters,
    )


def kd_state(run: Path) -> dict[str, Any]:
    """What of the kd run's checkpoint comes back: the student's EMA (the one it evaluates and
    saves) and the step. Named as the EMA twin of ``student`` so that `unpack` accepts it alone and
    writes the run's transformer folder from it."""
    import torch

    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    return {EMA_STUDENT: state["ema"], "step": state["step"]}

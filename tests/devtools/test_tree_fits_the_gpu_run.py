"""The tracked tree travels to the GPU machine with every prepared run (docs/GPU_RUN.md), inside its
64 MiB with the wheels the run carries: a commit that grows the tree past that breaks the next GPU run
(rare and short) without any other test noticing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sprint_desktop.devtools.gpu_run import CARRY_LIMIT_MIB

ROOT = Path(__file__).resolve().parents[2]
WHEELS_MIB = 6.5  # diffusers + platformdirs as gpu_prepare.sh downloads them (6.2 MiB on 2026-11-27)


def test_tracked_tree_plus_wheels_fit_the_device_limit():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [ROOT / n for n in names.decode().split("\0") if n]
    tree_mib = sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink()) / 2**20
    assert tree_mib > 1  # the listing worked
    assert tree_mib + WHEELS_MIB <= CARRY_LIMIT_MIB, (
        f"tracked files {tree_mib:.1f} MiB + wheels {WHEELS_MIB} MiB > {CARRY_LIMIT_MIB} MiB: "
        "the prepared GPU run would not fit (docs/GPU_RUN.md)"
    )

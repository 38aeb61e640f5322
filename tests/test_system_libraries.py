"""Qt's window needs xcb libraries from the system: scripts/dev.sh names every missing one in one
apt-get line, the .deb depends on them, and the README's quick start lists them (one list)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sprint_desktop.core.paths import project_root

ROOT = project_root()
LIST = ROOT / "packaging" / "linux" / "xcb-libraries.txt"


def _packages() -> list[tuple[str, str]]:
    rows = [line.split() for line in LIST.read_text().splitlines() if line and not line.startswith("#")]
    return [(row[0], row[1]) for row in rows]


def test_dev_sh_names_every_missing_library_in_one_apt_line(tmp_path):
    packages = _packages()
    present = [soname for package, soname in packages if package not in ("libxcb-icccm4", "libxcb-keysyms1")]
    run = _check_display(tmp_path / "some", present)
    assert run.returncode == 1
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in run.stderr
    ok = _check_display(tmp_path / "all", [soname for _, soname in packages])
    assert ok.returncode == 0, ok.stderr


def _check_display(fake: Path, sonames: list[str]) -> subprocess.CompletedProcess[str]:
    """`dev.sh check-display` with an ldconfig that lists only ``sonames``."""
    fake.write_text("#!/bin/sh\n" + "".join(f"echo '\t{s} (libc6,x86-64) => /lib/{s}'\n" for s in sonames))
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "dev.sh"), "check-display"],
        capture_output=True,
        text=True,
        env={**os.environ, "LDCONFIG": str(fake)},
        timeout=60,
    )


def test_the_deb_and_the_readme_name_them_all():
    make_deb = (ROOT / "packaging" / "linux" / "make_deb.sh").read_text()
    assert "xcb-libraries.txt" in make_deb and "$xcb_depends" in make_deb
    readme = (ROOT / "README.md").read_text()
    line = "sudo apt-get install " + " ".join(package for package, _ in _packages())
    assert line in readme

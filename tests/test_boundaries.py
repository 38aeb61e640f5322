"""The package boundaries of ARCHITECTURE.md, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import importlib, pkgutil, sys
import {package} as pkg
for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if not mod.name.endswith(".__main__"):  # a program, not a module to import
        importlib.import_module(mod.name)
bad = sorted(m for m in {forbidden} if m in sys.modules)
print(",".join(bad))
"""


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("sprint_desktop.core", ["torch", "PySide6", "diffusers", "transformers", "onnxruntime"]),
        ("sprint_desktop.engine", ["PySide6", "sprint_desktop.devtools"]),
        (
            "sprint_desktop.workspace",
            ["torch", "PySide6", "diffusers", "transformers", "onnxruntime", "sprint_desktop.devtools"],
        ),
        (
            "sprint_desktop.ui",
            ["torch", "diffusers", "transformers", "onnxruntime", "sprint_desktop.devtools"],
        ),
        # The runtime packages never import the developer tools, which the installed app leaves out.
        ("sprint_desktop.export", ["sprint_desktop.devtools", "sprint_desktop.distill"]),
        ("sprint_desktop.store", ["sprint_desktop.devtools", "sprint_desktop.distill"]),
        ("sprint_desktop.cli", ["sprint_desktop.devtools"]),
    ],
)
def test_package_does_not_import(package, forbidden):
    code = CHECK.format(package=package, forbidden=forbidden)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"{package} imports {proc.stdout.strip()}"


def test_cli_help_does_not_import_torch():
    code = "import sys, sprint_desktop.cli as c\ntry:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().endswith("False"), proc.stdout + proc.stderr

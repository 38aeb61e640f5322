"""The scripts outside the package (scripts/, packaging/) import what the package still has: they
are not type-checked, and a name moved inside the package once broke the soak unnoticed."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("scripts/*.py"), *ROOT.glob("packaging/*.py")])


def package_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every ``from sprint_desktop... import name`` and ``import sprint_desktop...``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sprint_desktop"):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("sprint_desktop")]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_imports_exist(script):
    for module, name in package_imports(script):
        loaded = importlib.import_module(module)
        if name is not None and not hasattr(loaded, name):
            importlib.import_module(f"{module}.{name}")  # a submodule, else ModuleNotFoundError


def test_the_scripts_are_found():
    assert any(p.name == "soak.py" for p in SCRIPTS) and any(p.name == "stage_model.py" for p in SCRIPTS)

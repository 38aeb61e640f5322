"""The package floors of ARCHITECTURE.md (repo root): each package imports only from lower floors,
no module imports itself back through others, and the runtime packages keep their third-party
boundaries (checked in fresh interpreters)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sprint_desktop"

# Lowest first. A package may import packages on lower floors only; packages on one floor are
# independent of each other. The root package (`sprint_desktop`: the version) is below them all.
# A dotted name would be a module with its own floor inside a package (none now).
FLOORS: list[tuple[str, ...]] = [
    ("core",),
    ("formats",),
    ("engine", "store"),
    ("export",),
    ("factory", "workspace"),
    ("ui",),
    ("distill",),
    ("devtools",),
    ("cli",),
]
FLOOR_OF = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            nodes.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return nodes


def project_imports(type_checking: bool = True) -> dict[str, set[str]]:
    """Every project module and the project modules it imports anywhere in its code: at the top, in
    functions (lazy imports hide circles, so they count), and with ``type_checking`` under
    TYPE_CHECKING (they must respect the floors too, but they never run, so they make no circle)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skipped = set() if type_checking else _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:  # `from . import data` imports the module `data`
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if _is_module(sub) else base)
        graph[name] = {t for t in targets if t == "sprint_desktop" or t.startswith("sprint_desktop.")}
        graph[name].discard(name)
    return graph


def _package(module: str) -> str | None:
    """The entry of `FLOORS` that holds ``module`` (the longest that matches); None: the root."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FLOOR_OF:
            return ".".join(parts[:n])
    return None


def test_every_package_has_a_floor():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert packages | modules == {name.split(".")[0] for name in FLOOR_OF}


def test_imports_go_down_the_floors_only():
    upward = []
    for module, targets in project_imports().items():
        source = _package(module)
        for target in targets:
            dest = _package(target)
            if dest is None or dest == source:
                continue
            if source is None or FLOOR_OF[dest] >= FLOOR_OF[source]:
                upward.append(f"{module} -> {target}")
    assert upward == [], "imports against ARCHITECTURE.md's floors:\n" + "\n".join(sorted(upward))


# The training scripts' lazy imports of each other's helpers, left as they are while a training
# campaign resumes from them (issue #17); ARCHITECTURE.md names them. Nothing else may form a circle.
KNOWN_CIRCLES = [
    {
        "sprint_desktop.distill.evaluate",
        "sprint_desktop.distill.train_student",
        "sprint_desktop.distill.train_teacher",
    }
]


def import_circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan's strongly
    connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_circles(graph) == [{"a", "b", "c"}]


def test_no_import_circles():
    circles = import_circles(project_imports(type_checking=False))
    assert sorted(map(sorted, circles)) == sorted(map(sorted, KNOWN_CIRCLES)), circles


def test_architecture_md_lists_these_floors():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*(\d+)\s*\|([^|]+)\|", text, re.MULTILINE)
    documented = [(int(level), tuple(re.findall(r"`([\w.]+)`", names))) for level, names in rows]
    assert documented == list(enumerate(FLOORS))


CHECK = """
import importlib, pkgutil, sys
import {package} as pkg
for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if not mod.name.endswith(".__main__"):  # a program, not a module to import
        importlib.import_module(mod.name)
bad = sorted(m for m in {forbidden} if m in sys.modules)
print(",".join(bad))
"""


NO_ML = ["torch", "diffusers", "transformers", "onnxruntime"]


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("sprint_desktop.core", [*NO_ML, "PySide6"]),
        ("sprint_desktop.formats", [*NO_ML, "PySide6"]),
        ("sprint_desktop.engine", ["PySide6"]),
        ("sprint_desktop.store", [*NO_ML, "PySide6"]),
        ("sprint_desktop.workspace", [*NO_ML, "PySide6"]),
        ("sprint_desktop.ui", NO_ML),
        # `sprint bench` loads the developer tools when it runs, not when the CLI is imported.
        ("sprint_desktop.cli", [*NO_ML, "PySide6", "sprint_desktop.devtools", "sprint_desktop.distill"]),
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

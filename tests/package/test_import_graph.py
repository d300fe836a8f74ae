"""The package's module import graph has no cycle, counting imports inside functions too, and the
layering of docs/architecture.md holds (eval, runs and sampling never import train; nets does not
import core; cli is imported by no library module)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import noisecraft

ROOT = Path(noisecraft.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_of(name: str) -> set[str]:
    """noisecraft modules `name` imports anywhere in its file (functions included), with the
    packages whose __init__ runs on the way (other than its own ancestors)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            for a in node.names:
                sub = f"{base}.{a.name}"
                targets.add(sub if sub in MODULES else base)
    out = set()
    own = set(_ancestors(name)) | {name}
    for t in targets:
        if not t.startswith("noisecraft"):
            continue
        while t not in MODULES and "." in t:
            t = t.rsplit(".", 1)[0]
        out.update(x for x in [*_ancestors(t), t] if x in MODULES and x not in own)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def _find_cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_every_module_imports():
    for name in MODULES:
        importlib.import_module(name)


def test_no_import_cycle_anywhere():
    cycle = _find_cycle()
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    GRAPH["noisecraft.core"] = GRAPH["noisecraft.core"] | {"noisecraft.train"}  # a deliberate one
    try:
        assert _find_cycle() is not None
    finally:
        GRAPH["noisecraft.core"] = imports_of("noisecraft.core")


def _reaches(start: str, prefix: str) -> list[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for n in GRAPH[m]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return sorted(n for n in seen if n == prefix or n.startswith(prefix + "."))


@pytest.mark.parametrize("package, forbidden", [
    ("noisecraft.eval", "noisecraft.train"),
    ("noisecraft.runs", "noisecraft.train"),
    ("noisecraft.sampling", "noisecraft.train"),
    ("noisecraft.conditioning", "noisecraft.train"),
    ("noisecraft.nets", "noisecraft.core"),
    ("noisecraft.core", "noisecraft.sampling"),
    ("noisecraft.train", "noisecraft.cli"),
    ("noisecraft.runs", "noisecraft.cli"),
    ("noisecraft.web", "noisecraft.cli"),  # the web app uses the public API only
    ("noisecraft.web", "noisecraft.train"),
])
def test_imports_point_one_way(package, forbidden):
    for m in (m for m in MODULES if m == package or m.startswith(package + ".")):
        assert not _reaches(m, forbidden), f"{m} reaches {_reaches(m, forbidden)}"

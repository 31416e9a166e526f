"""The map in docs/ARCHITECTURE.md, checked from the source: no import circles between files, no strategy or
shared part imports the SANAS package, and `latency/` stands on its own."""

import ast
import pathlib
from typing import Dict, List, Set

from conftest import ROOT

PACKAGES = ("ppnas", "latency", "search_space", "tools", "slim")
# what latency/ may import of ppnas: the package root (zlib first), its errors and its file helpers
LATENCY_MAY_IMPORT = {"ppnas", "ppnas.errors", "ppnas.storage"}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts[-1] == "__main__":  # tools/latency.py/__main__.py runs as tools/latency.py
        parts = parts[:-1]
        parts[-1] = parts[-1].removesuffix(".py")
    return ".".join(parts)


def source_files() -> Dict[str, pathlib.Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            files[module_name(path)] = path
    return files


def imports_of(path: pathlib.Path, known: Set[str]) -> Set[str]:
    """Every first-party module `path` imports, anywhere in the file (in functions and TYPE_CHECKING blocks too)."""
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> Dict[str, Set[str]]:
    files = source_files()
    known = set(files)
    return {name: imports_of(path, known) - {name} for name, path in files.items()}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_nothing_but_entry_points_imports_the_sanas_package():
    graph = import_graph()
    offenders = {
        module: sorted(m for m in imported if m.startswith("ppnas.sanas"))
        for module, imported in graph.items()
        if module.startswith("ppnas.") and not module.startswith("ppnas.sanas")
    }
    assert {m: bad for m, bad in offenders.items() if bad} == {}
    assert any("ppnas.sanas.search" in imported for imported in graph.values())  # the check sees real imports


def test_latency_stands_on_its_own():
    graph = import_graph()
    outside = {
        module: sorted(m for m in imported if not m.startswith("latency") and m not in LATENCY_MAY_IMPORT)
        for module, imported in graph.items()
        if module == "latency" or module.startswith("latency.")
    }
    assert {m: bad for m, bad in outside.items() if bad} == {}
    assert graph["latency.builder"] >= {"latency.engine", "latency.opkeys"}  # the check sees real imports

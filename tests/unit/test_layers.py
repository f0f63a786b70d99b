"""Imports run one way: every import within mmtui (function-level and relative ones too, and those under
TYPE_CHECKING) goes to the importer's own layer or a lower one (mmtui/layers.py), and no modules import each
other in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import mmtui
from mmtui.layers import LAYERS, LAYER_OF, layer_of

PACKAGE = Path(mmtui.__file__).resolve().parent


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """mmtui modules `name` imports -> the line of the first such import ("from .x import y" imports x, and x.y
    when that is a module; a module's own packages do not count)."""
    out: dict[str, int] = {}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            head = ".".join(base + ([node.module] if node.module else []))
            targets = [head] + [f"{head}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + ".") and target != "mmtui":
                out.setdefault(target, node.lineno)
    return out


def graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    assert set(LAYER_OF.values()) <= set(LAYERS)
    assert [m for m in sorted(modules()) if layer_of(m) is None] == []


def test_no_import_runs_up_the_layers():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [f"{m} ({layer_of(m)}) imports {t} ({layer_of(t)}) at line {line}"
              for m, targets in sorted(graph().items()) for t, line in sorted(targets.items())
              if rank[layer_of(t)] > rank[layer_of(m)]]
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(", ".join(c) for c in found)


def test_the_checks_catch_what_they_guard_against():
    edges = {"mmtui.a": {"mmtui.b": 1}, "mmtui.b": {"mmtui.c": 1}, "mmtui.c": {"mmtui.a": 1}, "mmtui.d": {}}
    assert cycles(edges) == [["mmtui.a", "mmtui.b", "mmtui.c"]]
    assert layer_of("mmtui.train.finetune") == "write" and layer_of("mmtui.train.projector") == "models"
    assert layer_of("mmtui.tui.screens.search") == "front" and layer_of("mmtui.catalog.readers") == "core"

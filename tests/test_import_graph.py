"""The import graph of the kefuqa package: no cycles, and the core never reaches up into the layers.

The graph is read from the source with `ast` (every module under src/kefuqa, found by walking the folder,
so modules added or split later are covered): ``import`` and ``from … import`` statements anywhere in a
module (inside functions too), relative imports resolved, ``from pkg import mod`` counted as an import of
the submodule, and ``importlib.import_module("kefuqa.…")`` / ``__import__`` with a literal name. An import
of ``a.b.c`` is an edge to the module ``a.b.c`` (not to the ``__init__`` of its packages).
Imports under ``if TYPE_CHECKING:`` are type references only: they don't count as cycles, but the core
may not make them to the layers above it either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The core: what checks a conversation. "Whatever kefuqa.engine becomes" is covered by the prefixes, and
# everything these modules import (found below) counts as core too.
CORE_PREFIXES = ("kefuqa.model", "kefuqa.normalize", "kefuqa.scoring", "kefuqa.errors", "kefuqa.rules",
                 "kefuqa.engine", "kefuqa.kinds")
# The layers above the core: input, output, recordings, the web service, batching and the commands.
LAYERS = ("kefuqa.readers", "kefuqa.writers", "kefuqa.audio", "kefuqa.service", "kefuqa.cli", "kefuqa.batch",
          "kefuqa.judge_cli", "kefuqa.distributed")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line}{', TYPE_CHECKING' if self.type_only else ''})"


def modules(src: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted name → (file, is a package) for every module of `package` under `src`."""
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        out[".".join(parts)] = (path, is_pkg)
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    ids.update(id(n) for n in ast.walk(stmt))
    return ids


def _imported_names(node: ast.AST, package_of_module: str) -> Iterable[str]:
    """The dotted names a node imports (relative ones resolved), submodules named as `pkg.mod`."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = package_of_module.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        for alias in node.names:
            yield f"{module}.{alias.name}"  # a submodule, or a name in `module`: resolved by the caller
    elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
            yield node.args[0].value


def import_edges(src: Path, package: str) -> tuple[dict[str, tuple[Path, bool]], list[Edge]]:
    mods = modules(src, package)
    edges: list[Edge] = []
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        type_only = _type_checking_nodes(tree)
        package_of_module = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(tree):
            for target in _imported_names(node, package_of_module):
                if target != package and not target.startswith(package + "."):
                    continue
                while target not in mods:  # `pkg.name` where name is not a module: the module `pkg`
                    target = target.rpartition(".")[0]
                if target != name:
                    edges.append(Edge(name, target, getattr(node, "lineno", 0), id(node) in type_only))
    return mods, edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def _graph(edges: Iterable[Edge], *, type_only: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        if type_only or not e.type_only:
            graph.setdefault(e.source, set()).add(e.target)
    return graph


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.fixture(scope="module")
def kefuqa_graph() -> tuple[dict[str, tuple[Path, bool]], list[Edge]]:
    return import_edges(SRC, "kefuqa")


def _core(mods: dict[str, tuple[Path, bool]], edges: list[Edge]) -> set[str]:
    """The core modules and every module they import, at run time or for types."""
    graph = _graph(edges, type_only=True)
    core = {m for m in mods if _under(m, CORE_PREFIXES)}
    stack = list(core)
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in core and nxt != "kefuqa":
                core.add(nxt)
                stack.append(nxt)
    return core


# ---- the graph builder itself --------------------------------------------------------------------------


def test_the_graph_builder_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n", encoding="utf-8")
    (pkg / "a.py").write_text("from .sub import b\nx = 1\n", encoding="utf-8")
    (pkg / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import T\n"
        "def f():\n    from .. import a\n    return a.x\n", encoding="utf-8")
    (pkg / "c.py").write_text("import importlib\ndef g():\n    return importlib.import_module('pkg.sub.b')\n",
                              encoding="utf-8")
    mods, edges = import_edges(tmp_path, "pkg")
    assert set(mods) == {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.c"}
    assert {(e.source, e.target, e.type_only) for e in edges} == {
        ("pkg", "pkg.a", False), ("pkg.a", "pkg.sub.b", False), ("pkg.sub.b", "pkg.c", True),
        ("pkg.sub.b", "pkg.a", False), ("pkg.c", "pkg.sub.b", False)}
    assert find_cycle(_graph(edges)) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    assert find_cycle({"x": {"y"}, "y": {"z"}}) is None


# ---- kefuqa ----------------------------------------------------------------------------------------------


def test_the_walk_finds_the_package(kefuqa_graph: tuple[dict[str, tuple[Path, bool]], list[Edge]]) -> None:
    mods, edges = kefuqa_graph
    assert {"kefuqa", "kefuqa.model", "kefuqa.cli", "kefuqa.batch", "kefuqa.readers.registry",
            "kefuqa.audio"} <= set(mods)
    assert any(m == "kefuqa.engine" or m.startswith("kefuqa.engine.") for m in mods)
    assert len(edges) > 50


def test_no_import_cycle_between_modules(kefuqa_graph: tuple[dict[str, tuple[Path, bool]], list[Edge]]) -> None:
    _, edges = kefuqa_graph
    cycle = find_cycle(_graph(edges))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_the_core_and_the_layers(
        kefuqa_graph: tuple[dict[str, tuple[Path, bool]], list[Edge]]) -> None:
    """With the core as one node and each layer (a subpackage or a top-level module) as one node, the
    graph is a hierarchy: plugins such as the audio layer add themselves to the readers, not the reverse."""
    mods, edges = kefuqa_graph
    core = _core(mods, edges)

    def unit(name: str) -> str:
        return "<core>" if name in core else ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for e in edges:
        if not e.type_only and unit(e.source) != unit(e.target):
            graph.setdefault(unit(e.source), set()).add(unit(e.target))
    cycle = find_cycle(graph)
    assert cycle is None, "cycle between layers: " + " -> ".join(cycle or [])


def test_the_core_never_imports_the_layers(kefuqa_graph: tuple[dict[str, tuple[Path, bool]], list[Edge]]) -> None:
    mods, edges = kefuqa_graph
    core = _core(mods, edges)
    assert {"kefuqa.model", "kefuqa.normalize", "kefuqa.scoring"} <= core
    assert any(_under(m, ("kefuqa.engine",)) for m in core) and any(_under(m, ("kefuqa.rules",)) for m in core)
    reaching_up = [str(e) for e in edges if e.source in core and (_under(e.target, LAYERS) or e.target == "kefuqa")]
    assert not reaching_up, "the core imports a layer above it:\n" + "\n".join(reaching_up)
    assert not core & {m for m in mods if _under(m, LAYERS)}


def test_readers_do_not_import_the_audio_layer(
        kefuqa_graph: tuple[dict[str, tuple[Path, bool]], list[Edge]]) -> None:
    _, edges = kefuqa_graph
    up = [str(e) for e in edges if _under(e.source, ("kefuqa.readers",)) and _under(e.target, ("kefuqa.audio",))]
    assert not up, "\n".join(up)


def test_test_helpers_are_not_in_the_runtime_package(
        kefuqa_graph: tuple[dict[str, tuple[Path, bool]], list[Edge]]) -> None:
    mods, _ = kefuqa_graph
    assert "kefuqa.audio.synth" not in mods  # the speech synthesiser lives in tests/audio_synth.py

"""Imports go one way: ``loops`` -> ``simulators`` -> ``bfm_stim``, and ``bfm_stim`` has no import cycle.

Every module under ``bfm_stim/``, ``simulators/`` and ``loops/`` is parsed with :mod:`ast`; every
``import`` counts wherever it is written: at module level, inside a function (the usual way to hide a
cycle) or under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bfm_stim", "simulators", "loops")
# A package may import the ones after it, never the ones before it.
LAYERS = {"loops": 0, "simulators": 1, "bfm_stim": 2}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # file:line of the import


def modules(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _known(name: str, mods: dict) -> str | None:
    """The module ``name`` refers to: itself, else the closest package above it that exists."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, is_pkg: bool, mods: dict, root: Path = REPO) -> list[Edge]:
    """Every import in ``path`` of a module in ``mods`` (all nesting levels, relative imports resolved)."""
    package = module if is_pkg else module.rpartition(".")[0]
    rel = path.relative_to(root).as_posix()
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [_known(a.name, mods) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [_known(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base, mods) for a in node.names]
        else:
            continue
        out += [Edge(module, t, f"{rel}:{node.lineno}") for t in targets if t and t != module]
    return out


def import_graph(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> list[Edge]:
    mods = modules(root, packages)
    return [e for m, (f, is_pkg) in mods.items() for e in imports(m, f, is_pkg, mods, root)]


def find_cycle(edges: list[Edge]) -> list[Edge] | None:
    """One import cycle as its edges (first edge's source == last edge's target), or ``None``."""
    graph: dict[str, list[Edge]] = {}
    for e in edges:
        graph.setdefault(e.source, []).append(e)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[Edge] = []

    def visit(m: str) -> list[Edge] | None:
        state[m] = 1
        for e in sorted(graph.get(m, []), key=lambda e: e.target):
            if state.get(e.target) == 1:
                start = next(i for i, p in enumerate(path + [e]) if p.source == e.target)
                return (path + [e])[start:]
            if e.target not in state:
                path.append(e)
                found = visit(e.target)
                if found:
                    return found
                path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def _describe(cycle: list[Edge]) -> str:
    names = " -> ".join([cycle[0].source] + [e.target for e in cycle])
    return f"{names} (imports at {', '.join(e.where for e in cycle)})"


def against_layers(edges: list[Edge]) -> list[Edge]:
    """The imports of a lower layer's module from a higher layer."""
    return [e for e in edges if LAYERS[e.target.split(".")[0]] < LAYERS[e.source.split(".")[0]]]


def test_layers_import_one_way():
    bad = against_layers(import_graph())
    assert not bad, "imports against the layers (loops -> simulators -> bfm_stim):\n" + "\n".join(
        f"  {e.source} imports {e.target} at {e.where}" for e in bad)


def test_bfm_stim_has_no_import_cycle():
    edges = [e for e in import_graph() if e.source.startswith("bfm_stim") and e.target.startswith("bfm_stim")]
    assert len(edges) > 100, f"only {len(edges)} imports found inside bfm_stim: the parser misses some"
    cycle = find_cycle(edges)
    assert cycle is None, f"import cycle in bfm_stim: {_describe(cycle)}"


def test_the_checks_see_nested_imports_and_report_cycles(tmp_path):
    """The parser finds function-level, TYPE_CHECKING and relative imports, and names a cycle's path."""
    pkg = tmp_path / "bfm_stim"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bfm_stim.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "sub" / "c.py").write_text("import numpy\n\nclass K:\n    def g(self):\n        from ..a import x\n")
    (pkg / "d.py").write_text("def h():\n    import loops.bench.data\n")
    edges = import_graph(tmp_path, ("bfm_stim",))
    assert {(e.source, e.target) for e in edges} == {
        ("bfm_stim.a", "bfm_stim.sub.b"), ("bfm_stim.sub.b", "bfm_stim.sub.c"), ("bfm_stim.sub.c", "bfm_stim.a")}
    cycle = find_cycle(edges)
    assert cycle is not None and cycle[0].source == cycle[-1].target and len(cycle) == 3
    msg = _describe(cycle)
    assert "bfm_stim.a -> bfm_stim.sub.b -> bfm_stim.sub.c -> bfm_stim.a" in msg and "bfm_stim/sub/c.py:5" in msg
    assert find_cycle([e for e in edges if e.source != "bfm_stim.sub.c"]) is None
    (tmp_path / "loops" / "bench").mkdir(parents=True)
    for f in ("loops/__init__.py", "loops/bench/__init__.py", "loops/bench/data.py"):
        (tmp_path / f).write_text("")
    up = against_layers(import_graph(tmp_path, ("bfm_stim", "loops")))
    assert [(e.source, e.target, e.where) for e in up] == [("bfm_stim.d", "loops.bench.data", "bfm_stim/d.py:2")]

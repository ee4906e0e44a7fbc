"""No import loops inside ``cascade/``: each module can be read (and imported) before its users.

The loop check is static. It reads every module's top-level imports, those under ``if
TYPE_CHECKING:`` included (a type-only import is still a dependency, and a loop hidden there is
a loop in the design), and resolves relative imports and ``from package import module``.
Imports inside functions are not read: they are how litellm and the batch machinery stay lazy.
And ``import cascade`` must not load the test doubles of :mod:`cascade.testing`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import cascade

ALLOWED: tuple[frozenset[str], ...] = ()
"""Loops known and being fixed; each must match a loop found exactly, or it does not excuse it."""


def _modules(root: Path) -> dict[str, Path]:
    """Every module under ``root`` (a package folder) by its dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _top_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs (or type-checks) as it loads: not those inside functions."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _top_level(block)
            for handler in node.handlers:
                yield from _top_level(handler.body)


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names one import statement reaches, relative ones resolved."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Which modules of the package at ``root`` each one imports as it loads."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        reached: set[str] = set()
        for node in _top_level(tree.body):
            reached.update(t for t in _targets(name, path, node) if t in modules)
        graph[name] = reached - {name}
    return graph


def _reach(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def import_loops(graph: Mapping[str, set[str]]) -> set[frozenset[str]]:
    """The loops of ``graph``: each set of modules that all reach each other."""
    reach = {name: _reach(graph, name) for name in graph}
    return {
        frozenset({name} | {other for other in reach[name] if name in reach[other]})
        for name in graph
        if name in reach[name]
    }


def test_no_import_loops_inside_cascade() -> None:
    """No module of cascade imports itself back, through any chain, but the allowed loops."""
    loops = import_loops(import_graph(Path(cascade.__file__).parent))
    assert [sorted(loop) for loop in loops if loop not in ALLOWED] == []


def test_a_loop_through_type_checking_is_seen(tmp_path: Path) -> None:
    """A loop closed by a relative import under ``TYPE_CHECKING`` is seen; one in a function not."""
    package = tmp_path / "pkg"
    (package / "engine").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.engine import loop\n")
    (package / "engine" / "__init__.py").write_text("")
    (package / "engine" / "loop.py").write_text("from . import hedge, lazy\n")
    (package / "engine" / "hedge.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .loop import TaskRun\n"
    )
    (package / "engine" / "lazy.py").write_text("def f():\n    from pkg.engine import loop\n")
    loops = import_loops(import_graph(package))
    assert loops == {frozenset({"pkg.engine.loop", "pkg.engine.hedge"})}


def test_importing_cascade_leaves_the_test_doubles_out() -> None:
    """``import cascade`` loads neither :mod:`cascade.testing` nor its fake providers."""
    probe = "import sys, cascade\nassert not [m for m in sys.modules if 'cascade.testing' in m]"
    result = subprocess.run(  # noqa: S603  # our own interpreter on our own code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

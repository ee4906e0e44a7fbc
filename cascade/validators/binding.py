r"""Bind an answer's function to the name the tests call, when the binding is unambiguous.

When a prompt does not name the function, models invent names, and tests that call the task's
``entry_point`` then fail on a right answer. Where the answer does not define ``entry_point``,
its function is bound to that name when exactly one top-level function could be meant: the only
one, or the only one whose parameters fit every call of ``entry_point`` in the tests.

>>> bound = bind_entry_point("def add(a, b):\n    return a + b\n", "plus", ["plus(1, 2)"])
>>> bound.note, bound.code.splitlines()[-1]
('bound add to plus', 'plus = add')
>>> bind_entry_point("def f(a):\n    pass\ndef g(a):\n    pass\n", "h", ["h(1)"]).problem
'the answer defines no function named h, and 2 of its functions (f, g) fit the tests'
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Binding", "bind_entry_point"]


@dataclass(frozen=True, slots=True)
class Binding:
    """The code to test, what was bound (for the verdict), or why no binding is possible."""

    code: str
    note: str | None = None
    problem: str | None = None


def bind_entry_point(code: str, entry_point: str, tests: Sequence[str]) -> Binding:
    """``code``, with its function bound to ``entry_point`` where that is unambiguous."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Binding(code)  # the test run reports the syntax error itself
    defined = _top_level_names(tree)
    if entry_point in defined:
        return Binding(code)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        return Binding(
            code, problem=f"the answer defines no function (the tests call {entry_point})"
        )
    fitting = functions
    if len(functions) > 1:
        arities = _arities(entry_point, tests)
        fitting = [f for f in functions if all(_accepts(f.args, n) for n in arities)]
    if len(fitting) != 1:
        names = ", ".join(f.name for f in fitting or functions)
        count = f"{len(fitting)} of its functions ({names}) fit" if fitting else "none fits"
        return Binding(
            code,
            problem=f"the answer defines no function named {entry_point}, and {count} the tests",
        )
    name = fitting[0].name
    bound = code + ("" if code.endswith("\n") else "\n") + f"\n{entry_point} = {name}\n"
    return Binding(bound, note=f"bound {name} to {entry_point}")


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _arities(entry_point: str, tests: Sequence[str]) -> set[int]:
    """How many arguments the tests pass to ``entry_point``, in each call they make."""
    found: set[int] = set()
    for test in tests:
        try:
            tree = ast.parse(test)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == entry_point
                and not any(isinstance(a, ast.Starred) for a in node.args)
            ):
                found.add(len(node.args) + len(node.keywords))
    return found


def _accepts(args: ast.arguments, count: int) -> bool:
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    return required <= count and (count <= positional or args.vararg is not None)

r"""Tests judged apart from the answer: which names cross, and the script that runs snippets.

Every test form (assert snippets and pytest files alike) runs in a sandbox of its own that holds
no code of the answer. There the tests' setup, their imports, both sides of every comparison,
every method called on a returned value, every builtin and every helper are evaluated; the
answer, in its own sandbox, only computes what its functions return, as plain data
(:mod:`cascade.validators.wire`, :mod:`cascade.validators.harness`).

:func:`crossing_names` says which of the answer's names the tests may reach: the task's entry
point, and every name the tests read without binding it themselves that is not a builtin (so
an answer's module-level ``abs``, ``set`` or ``isclose`` never replaces the real one, and the
tests' own ``from math import isclose`` wins). Of those, the answer's side serves only the ones
that are functions there.

:data:`SNIPPET_RUNNER` runs assert snippets in the tests' sandbox: the setup, then each snippet,
all in one namespace holding the proxies, each snippet passing if it raises nothing; one JSON
line per snippet on the channel. An ``assert`` over one comparison says what it got and what
it expected when it fails.

>>> crossing_names(["assert add(2, 2) == 4", "from math import isclose\nassert isclose(f(1), 2)"],
...                "add")
('add', 'f')
"""

from __future__ import annotations

import ast
import builtins
import marshal
from collections.abc import Iterable

__all__ = ["SNIPPET_RUNNER", "compiled", "crossing_names"]

_BUILTINS = frozenset(dir(builtins))
_MODULE = "solution"


def _bound_and_read(tree: ast.AST) -> tuple[set[str], set[str]]:
    """The names ``tree`` binds (but not by importing them from ``solution``) and reads."""
    bound: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.ImportFrom) and node.module == _MODULE:
            read.update(alias.name for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            bound.update(node.names)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == _MODULE
        ):
            read.add(node.attr)
    bound.discard("*")
    return bound, read


def crossing_names(sources: Iterable[str], entry_point: str | None) -> tuple[str, ...]:
    """The names of the answer's the tests in ``sources`` may call, sorted, entry point first."""
    bound: set[str] = set()
    read: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # the tests' own run reports it
        more_bound, more_read = _bound_and_read(tree)
        bound |= more_bound
        read |= more_read
    names = sorted(read - bound - _BUILTINS - {_MODULE})
    if entry_point:
        names = [entry_point, *(n for n in names if n != entry_point)]
    return tuple(names)


_OPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Eq: ("eq", ""), ast.NotEq: ("ne", "!= "), ast.Lt: ("lt", "< "), ast.LtE: ("le", "<= "),
    ast.Gt: ("gt", "> "), ast.GtE: ("ge", ">= "), ast.Is: ("is_", ""),
    ast.IsNot: ("is_not", "not "), ast.In: ("contains", "in "), ast.NotIn: ("contains", "not in "),
}  # fmt: skip
"""Each comparison's ``operator`` function, and how its expectation reads: ``expected < 4``."""


class _Explain(ast.NodeTransformer):
    """``assert L op R`` as ``assert _cascade_compare(L, R, op, shown)``: same values, one call."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPS:
            op, shown = _OPS[type(test.ops[0])]
            arguments = [test.left, test.comparators[0], ast.Constant(op), ast.Constant(shown)]
            call = ast.Call(ast.Name("_cascade_compare", ast.Load()), arguments, [])
            node.test = ast.copy_location(call, test)
        self.generic_visit(node)
        return node


def compiled(snippet: str, label: str) -> str | None:
    """``snippet`` compiled here, its asserts explaining themselves, for the runner.

    The code is marshalled, in hex (the sandbox runs this same Python), so that the runner
    imports no ``ast``; ``None`` when it does not compile, so that the runner says why.
    """
    try:
        tree = _Explain().visit(ast.parse(snippet, label))
        code = compile(ast.fix_missing_locations(tree), label, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return marshal.dumps(code).hex()


SNIPPET_RUNNER = r"""
import json, marshal, operator, os, sys
sys.path.insert(0, os.getcwd())  # python -I leaves the sandbox's folder out
sys.set_int_max_str_digits(0)
_channel = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
os.environ["CASCADE_PEER_FD"] = sys.argv[2]  # where the proxy "solution" finds the answer

def _send(item):
    _channel.write(json.dumps(item) + "\n")
    _channel.flush()

def _short(value):
    if type(value) is int and value.bit_length() > 4096:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception as exc:
        return f"(no repr: {type(exc).__name__})"
    return text if len(text) <= 200 else text[:199] + "…"

_last = []

def _cascade_compare(left, right, op, shown):
    if op == "contains":
        holds = (left in right) if shown == "in " else (left not in right)
    else:
        holds = getattr(operator, op)(left, right)
    if not holds:
        _last.append(f"got {_short(left)}, expected {shown}{_short(right)}")
    return holds

def _error(exc, label, code):
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == label]
    lines = code.splitlines()
    where = frames[-1].lineno if frames else getattr(exc, "lineno", None)
    line = lines[where - 1].strip() if where and where <= len(lines) else ""
    message = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, AssertionError) and not str(exc) and _last:
        message = f"AssertionError: {_last[-1]}"
    return (f"{line} ({message})" if line else message)[:600]

with open("cases.json", encoding="utf-8") as _handle:
    _cases = json.load(_handle)
_namespace = {"__name__": "__main__", "_cascade_compare": _cascade_compare}
try:
    import solution
    _namespace.update({n: getattr(solution, n) for n in solution.__all__})
except BaseException as _exc:
    _send({"stage": "solution", "error": f"{type(_exc).__name__}: {_exc}"[:600]})
    raise SystemExit(0)
try:
    exec(compile(_cases["setup"], "setup", "exec"), _namespace)
except BaseException as _exc:
    _send({"stage": "setup", "error": _error(_exc, "setup", _cases["setup"])})
    raise SystemExit(0)
_send({"stage": "loaded"})
for _index, (_snippet, _compiled) in enumerate(zip(_cases["snippets"], _cases["compiled"])):
    _label = f"test {_index + 1}"
    _last.clear()
    try:
        if _compiled is None:
            _code = compile(_snippet, _label, "exec")
        else:
            _code = marshal.loads(bytes.fromhex(_compiled))
        exec(_code, _namespace)
    except BaseException as _exc:
        _send({"i": _index, "error": _error(_exc, _label, _snippet)})
    else:
        _send({"i": _index, "ok": True})
_send({"stage": "done"})
"""
"""``python run.py FD PEER``: the snippets of ``cases.json`` (``setup``, ``snippets``, and each
one :func:`compiled`) against the proxy ``solution``, one JSON line per snippet on ``FD``."""

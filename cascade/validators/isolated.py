"""Assert snippets judged on the trusted side: the code under test only computes values.

An assert such as ``assert (add(2, 2)) == (4)`` is split, with :mod:`ast`, into what only the
candidate can compute (the *remote* expressions: ``add(2, 2)``) and what the test expects
(``4``, with the comparison around it). The sandboxed candidate process gets the remote
expressions alone, evaluates them after running the setup and the solution, and sends back
each value as plain data: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
``bytes``, and ``list``, ``tuple``, ``dict``, ``set`` and ``frozenset`` of those, each of its
exact builtin type (an ``OrderedDict``, ``defaultdict`` or ``Counter`` travels as the plain
``dict`` of its items, and a numpy number or array as the builtin values it holds). Anything
else (an instance of the candidate's own class, a subclass of ``int`` whose ``__eq__`` always
says yes) is a failure with a reason, never a pass.

This process then evaluates the rest of the assert over those values: the expected side, the
comparison, ``math.isclose``, ``abs(x - y) < eps``, ``sorted``, ``set``, ``len``... The
expected values never enter the candidate's process, so it cannot read them from a frame, and
its stdout carries nothing that counts. The values come back on a file descriptor of their own,
so a flood of output changes no verdict. The candidate could write that channel too, but what
it writes is only plain data, which must still equal expectations it never saw.

Snippets outside these forms (statements other than asserts, a comparison inside a
comprehension) are not recognised: :func:`split` returns ``None`` for them, and they run the
old way, their verdict marked ``self_reported``.

The script that runs in the sandbox is :data:`cascade.validators.harness.HARNESS`.

>>> checks = split(["assert (add(2, 2)) == (4)", "assert abs(area(1) - 3.14159) < 1e-3"])
>>> [c.remote for c in checks]
[('add(2, 2)',), ('area(1)',)]
>>> checks[0].holds([4]), checks[0].holds([5])
(True, False)
>>> split(["for x in range(3): assert f(x)"]) is None
True
"""

from __future__ import annotations

import ast
import builtins
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "Unplain", "decode", "split"]

_CALLS: dict[str, Callable[..., Any]] = {
    name: getattr(builtins, name)
    for name in ("abs", "all", "any", "bool", "dict", "float", "frozenset", "int", "len", "list",
                 "max", "min", "range", "repr", "reversed", "round", "set", "sorted", "str",
                 "sum", "tuple", "type", "isinstance", "complex", "bytes", "enumerate", "zip")
}  # fmt: skip
"""Builtins the trusted side may apply to values (the expected side, or around a remote one)."""
_TYPES = {"int", "float", "str", "bool", "list", "tuple", "dict", "set", "frozenset", "bytes"}
_CONSTANTS = {"True", "False", "None"}
_MATH = {name for name in dir(math) if not name.startswith("_")}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}  # fmt: skip
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}  # fmt: skip
_OP_TEXT: dict[type[ast.cmpop], str] = {
    ast.NotEq: "!= ", ast.Lt: "< ", ast.LtE: "<= ", ast.Gt: "> ", ast.GtE: ">= ",
    ast.Is: "", ast.IsNot: "not ", ast.In: "in ", ast.NotIn: "not in ",
}  # fmt: skip
"""How a failed comparison's expectation reads: ``expected 4``, ``expected < 4``."""
_REMOTE_NODES = (ast.Call, ast.Name, ast.Attribute, ast.Subscript)
"""What the candidate's process may evaluate: a call, a name, an attribute or an index."""
_NOT_REMOTE = (ast.Compare, ast.BoolOp, ast.Lambda, ast.NamedExpr, ast.comprehension,
               ast.Await, ast.Yield, ast.YieldFrom)  # fmt: skip
"""Nodes a remote expression must not hold: a comparison there would be the candidate's own."""


class Unplain(Exception):  # a reason, raised and caught inside this module
    """A value the candidate sent back that is not plain data."""


class _Unrecognised(Exception):
    pass


def _is_trusted_name(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _CALLS or node.id in _CONSTANTS or node.id == "math"
    return False


def _mentions_candidate(node: ast.AST) -> bool:
    """Whether ``node`` names anything but trusted builtins and ``math``."""
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and not _is_trusted_name(child):
            return True
    return False


def _trusted_function(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _CALLS
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "math" and node.attr in _MATH)  # fmt: skip


def _is_remote(node: ast.expr) -> bool:
    """Whether the candidate's process evaluates ``node`` (a call of its code, say) whole."""
    if not _mentions_candidate(node) or not isinstance(node, _REMOTE_NODES):
        return False
    return not (isinstance(node, ast.Call) and _trusted_function(node.func))


@dataclass(frozen=True, slots=True)
class Check:
    """One assert: the expressions the candidate evaluates, and the test over their values."""

    source: str
    test: ast.expr
    remote: tuple[str, ...]
    snippet: int = 0
    """Which snippet (from 0) the assert is in."""

    def holds(self, values: Sequence[Any]) -> bool:
        """Whether the assert holds when its remote expressions have ``values``."""
        return bool(_Evaluator(values).eval(self.test))

    def explain(self, values: Sequence[Any]) -> str:
        """What failed, for the reason and the model's feedback: the values and the other side."""
        test = self.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            evaluator = _Evaluator(values)
            left, right = evaluator.eval(test.left), evaluator.eval(test.comparators[0])
            op = _OP_TEXT.get(type(test.ops[0]), "")
            return f"got {_short(left)}, expected {op}{_short(right)}"
        shown = ", ".join(_short(v) for v in values)
        return f"the assert is false (the code returned {shown})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"


class _Evaluator:
    """Evaluate a test over the remote values, in this (trusted) process."""

    def __init__(self, values: Sequence[Any]) -> None:
        self._values = list(values)
        self._next = 0

    def eval(self, node: ast.expr) -> Any:  # noqa: PLR0911, PLR0912  # one case per node type
        if _is_remote(node):
            value = self._values[self._next]
            self._next += 1
            return value
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return {"True": True, "False": False, "None": None}.get(node.id, _CALLS.get(node.id))
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = [self.eval(e) for e in node.elts]
            return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict):
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)
                    if k is not None}  # fmt: skip
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self.eval(node.operand))
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.BoolOp):
            values = [self.eval(v) for v in node.values]  # every side, so the order holds
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.eval(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            test, body, other = self.eval(node.test), self.eval(node.body), self.eval(node.orelse)
            return body if test else other
        if isinstance(node, ast.Attribute) and _trusted_function(node):
            return getattr(math, node.attr)
        if isinstance(node, ast.Call):
            func = self._function(node.func)
            args = [self.eval(a) for a in node.args]
            kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg is not None}
            return func(*args, **kwargs)
        raise _Unrecognised(ast.unparse(node))

    @staticmethod
    def _function(node: ast.expr) -> Callable[..., Any]:
        if isinstance(node, ast.Name) and node.id in _CALLS:
            return _CALLS[node.id]
        if isinstance(node, ast.Attribute) and _trusted_function(node):
            return getattr(math, node.attr)  # type: ignore[no-any-return]
        raise _Unrecognised(ast.unparse(node))


def _remote_parts(node: ast.expr, found: list[str]) -> None:  # noqa: PLR0912  # one per node type
    """Collect the remote expressions of ``node`` in evaluation order; raise if not a form."""
    if not _mentions_candidate(node):
        _check_trusted(node)
        return
    if _is_remote(node):
        if any(isinstance(n, _NOT_REMOTE) for n in ast.walk(node)):
            raise _Unrecognised(ast.unparse(node))
        found.append(ast.unparse(node))
        return
    children: list[ast.expr]
    if isinstance(node, ast.Call):
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            raise _Unrecognised(ast.unparse(node))
        children = [*node.args, *(k.value for k in node.keywords)]
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        children = list(node.elts)
    elif isinstance(node, ast.UnaryOp):
        children = [node.operand]
    elif isinstance(node, ast.BinOp):
        children = [node.left, node.right]
    elif isinstance(node, ast.BoolOp):
        children = list(node.values)
    elif isinstance(node, ast.Compare):
        children = [node.left, *node.comparators]
    elif isinstance(node, ast.IfExp):
        children = [node.test, node.body, node.orelse]
    else:
        raise _Unrecognised(ast.unparse(node))
    for child in children:
        _remote_parts(child, found)


def _check_trusted(node: ast.expr) -> None:
    """A trusted side may use literals, operators and the allowed builtins and ``math`` only."""
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            _Evaluator._function(child.func)  # the same rule as evaluation
            if any(isinstance(a, ast.Starred) for a in child.args) or any(
                k.arg is None for k in child.keywords
            ):
                raise _Unrecognised(ast.unparse(child))
        elif (
            isinstance(child, ast.Attribute)
            and not (isinstance(child.value, ast.Name) and child.value.id == "math")
        ) or isinstance(child, ast.Subscript | ast.Lambda | ast.NamedExpr | ast.comprehension):
            raise _Unrecognised(ast.unparse(child))


def split(snippets: Sequence[str]) -> list[Check] | None:
    """Each snippet's asserts as checks; ``None`` when any snippet is not a recognised form."""
    checks: list[Check] = []
    for number, snippet in enumerate(snippets):
        try:
            module = ast.parse(snippet)
        except SyntaxError:
            return None
        if not module.body or not all(isinstance(s, ast.Assert) for s in module.body):
            return None
        for statement in module.body:
            assert isinstance(statement, ast.Assert)  # checked just above
            found: list[str] = []
            try:
                _remote_parts(statement.test, found)
            except _Unrecognised:
                return None
            checks.append(Check(ast.unparse(statement), statement.test, tuple(found), number))
    return checks


def decode(data: Any, depth: int = 0) -> Any:  # noqa: PLR0911, PLR0912  # one case per tag
    """A value the harness encoded, rebuilt from exact builtin types; :class:`Unplain` if not."""
    if depth > 200 or not isinstance(data, dict) or len(data) != 1:
        raise Unplain("a malformed value")
    ((tag, value),) = data.items()
    if tag == "n":
        return None
    if tag == "b" and isinstance(value, bool):
        return value
    if tag == "i" and isinstance(value, str):
        return int(value)
    if tag == "f" and isinstance(value, str):
        return float(value)
    if tag == "c" and isinstance(value, list) and len(value) == 2:
        return complex(float(value[0]), float(value[1]))
    if tag == "s" and isinstance(value, str):
        return value
    if tag == "y" and isinstance(value, str):
        return bytes.fromhex(value)
    if tag in ("l", "t", "set", "fs") and isinstance(value, list):
        items = [decode(v, depth + 1) for v in value]
        try:
            return {"l": list, "t": tuple, "set": set, "fs": frozenset}[tag](items)
        except TypeError as exc:
            raise Unplain(f"a set of unhashable items ({exc})") from exc
    if tag == "d" and isinstance(value, list):
        try:
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in value}
        except (TypeError, ValueError) as exc:
            raise Unplain(f"a dict that cannot be rebuilt ({exc})") from exc
    if tag == "x" and isinstance(value, str):
        raise Unplain(value)
    raise Unplain("a malformed value")

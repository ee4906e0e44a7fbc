"""The Python that runs inside the sandbox to send values across its edge, as source text.

:data:`ENCODER` turns a value into the tagged plain data that
:func:`cascade.validators.isolated.decode` reads back; :data:`HARNESS` is the script that runs
the code under test and sends the values of the assert snippets' calls
(:mod:`cascade.validators.isolated`). Both are text, run by the sandbox's Python, never here.
"""

from __future__ import annotations

__all__ = ["ENCODER", "HARNESS"]

ENCODER = r"""
import collections as _collections
_type = type
_PLAIN = {bool: "b", int: "i", float: "f", complex: "c", str: "s", bytes: "y", list: "l",
          tuple: "t", set: "set", frozenset: "fs", dict: "d", type(None): "n",
          _collections.OrderedDict: "d", _collections.defaultdict: "d",
          _collections.Counter: "d"}

class _Unplain(Exception):
    pass

def _encode(value, depth=0):
    tag = _PLAIN.get(_type(value))
    if tag is None and _type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()  # a numpy number or array, as the builtin values it holds
        tag = _PLAIN.get(_type(value))
    if tag is None:
        kind = _type(value)
        raise _Unplain(f"an instance of {kind.__module__}.{kind.__qualname__}, not plain data")
    if depth > 100:
        raise _Unplain("nested more than 100 deep")
    if tag == "n":
        return {"n": 0}
    if tag in ("b", "s"):
        return {tag: value}
    if tag == "i":
        return {"i": str(value)}
    if tag == "f":
        return {"f": repr(value)}
    if tag == "c":
        return {"c": [repr(value.real), repr(value.imag)]}
    if tag == "y":
        return {"y": value.hex()}
    if tag == "d":
        return {"d": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]}
    return {tag: [_encode(v, depth + 1) for v in value]}
"""
"""``_encode(value)``: a value as tagged plain data, read back by :func:`decode`; an instance of
any other type (a subclass included) raises ``_Unplain``. Shared by every script that sends
values across the sandbox's edge."""

HARNESS = (
    ENCODER
    + r"""
import json, os, sys, traceback
_channel = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
_dumps, _write, _flush = json.dumps, _channel.write, _channel.flush

def _send(item):
    _write(_dumps(item) + "\n")
    _flush()

def _error(exc, label, code):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == label]
    lines = code.splitlines()
    where = frames[-1].lineno if frames else None
    line = lines[where - 1].strip() if where and where <= len(lines) else ""
    message = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return f"{line} ({message})" if line else message

with open("cases.json", encoding="utf-8") as _handle:
    _cases = json.load(_handle)
_namespace = {"__name__": "solution"}  # only what the code defines: nothing lent
for _label in ("setup", "solution"):
    try:
        exec(compile(_cases[_label], _label, "exec"), _namespace)
    except BaseException as _exc:
        _send({"stage": _label, "error": _error(_exc, _label, _cases[_label])})
        raise SystemExit(0)
_send({"stage": "loaded"})
for _index, _source in enumerate(_cases["remote"]):
    try:
        _value = eval(compile(_source, "test", "eval"), _namespace)
    except BaseException as _exc:
        _send({"i": _index, "error": f"{type(_exc).__name__}: {_exc}".rstrip(": ")})
        continue
    try:
        _send({"i": _index, "value": _encode(_value)})
    except _Unplain as _exc:
        _send({"i": _index, "value": {"x": str(_exc)}})
    except BaseException as _exc:
        _send({"i": _index, "error": f"the value cannot be sent back ({type(_exc).__name__})"})
_send({"stage": "done"})
"""
)
"""Runs in the sandbox: ``python run.py FD``; reads ``cases.json`` (setup, solution and the
remote expressions), writes one JSON line per value to descriptor ``FD``."""

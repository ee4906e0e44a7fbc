"""The two ends of the socket between an answer's sandbox and its tests' sandbox, as source text.

:data:`SERVER` runs in the answer's sandbox (``serve.py``): it runs the setup and the answer,
says which of the names the tests reference are functions there, then answers calls, one JSON
line each way, with arguments and results as plain data (:mod:`cascade.validators.wire`).

:data:`PROXY` is ``solution.py`` in the tests' sandbox: importing it reads the answer's
greeting, and it then holds one proxy function per name the answer serves, and nothing else
(``__all__`` names them, so ``from solution import *`` hands the tests those proxies alone). A
greeting that is not well formed, or that names a function the tests did not ask for, is an
``ImportError``: the answer fails. A module the answer imported under a name the tests use
(``math``, ``np``) is imported here again, from the standard library or numpy, never taken from
the answer. An exception the answer raised comes back as the nearest builtin exception type.

Both are text, run by the sandbox's Python, never here.
"""

from __future__ import annotations

import inspect

import cascade.validators.wire as wire_module

__all__ = ["NAMES_FILE", "PROXY", "SERVER", "WIRE", "WIRE_FILE"]

NAMES_FILE = "_cascade_names.json"
"""The names the tests reference that may be the answer's functions, in both sandboxes."""

WIRE_FILE = "_cascade_wire.py"
WIRE = inspect.getsource(wire_module)
""":mod:`cascade.validators.wire`, as both sandboxes import it (``_cascade_wire``)."""

SERVER = r"""
import builtins, json, os, sys
sys.path.insert(0, os.getcwd())  # python -I leaves the sandbox's folder out
sys.set_int_max_str_digits(0)
from _cascade_wire import Unplain, decode, encode, loads
_reader = open(int(sys.argv[1]), "rb", closefd=False)  # the socket, read and written as a file
_writer = open(int(sys.argv[1]), "wb", closefd=False)
_dumps, _write, _flush, _readline = json.dumps, _writer.write, _writer.flush, _reader.readline
_Module = type(sys)

def _send(item):
    _write((_dumps(item) + "\n").encode())
    _flush()

def _builtin_kind(exc):
    for kind in type(exc).__mro__:
        if getattr(builtins, kind.__name__, None) is kind and issubclass(kind, Exception):
            return kind.__name__
    return "RuntimeError"

def _describe(exc):
    try:
        return str(exc)[:2000]
    except BaseException:
        return ""

with open("_cascade_names.json", encoding="utf-8") as _handle:
    _wanted = json.load(_handle)
with open("solution.py", encoding="utf-8") as _handle:
    _source = _handle.read()
_namespace = {"__name__": "solution"}
try:
    exec(compile(_source, "solution.py", "exec"), _namespace)
except BaseException as _exc:
    _send({"error": f"{type(_exc).__name__}: {_describe(_exc)}".rstrip(": ")})
    raise SystemExit(0)
_calls = [n for n in _wanted if callable(_namespace.get(n))
          and not isinstance(_namespace[n], _Module)]
_modules = {n: _namespace[n].__name__ for n in _wanted
            if isinstance(_namespace.get(n), _Module)}
_send({"calls": _calls, "modules": _modules})
while (_line := _readline()):
    _request = loads(_line)
    try:
        _args = [decode(a, 60.0) for a in _request["args"]]
        _kwargs = {k: decode(v, 60.0) for k, v in _request["kwargs"].items()}
        _result = _namespace[_request["call"]](*_args, **_kwargs)
    except BaseException as _exc:
        _send({"raised": _builtin_kind(_exc), "message": _describe(_exc)})
        continue
    try:
        _send({"value": encode(_result)})
    except Unplain as _exc:
        _send({"unplain": str(_exc)})
    except BaseException as _exc:
        _send({"unplain": f"a value that cannot be sent ({type(_exc).__name__})"})
"""
"""``python serve.py FD``: the answer, answering calls on socket ``FD``."""

PROXY = r"""
import builtins as _builtins, json as _json, os as _os, sys as _sys
from _cascade_wire import MAX_LINE_BYTES as _MAX, Unplain as _Unplain
from _cascade_wire import decode as _decode, encode as _encode, loads as _loads
_sys.set_int_max_str_digits(0)
_reader = open(int(_os.environ["CASCADE_PEER_FD"]), "rb", closefd=False)  # the socket, as files
_writer = open(int(_os.environ["CASCADE_PEER_FD"]), "wb", closefd=False)
with open("_cascade_names.json", encoding="utf-8") as _handle:
    _wanted = set(_json.load(_handle))
_TRUSTED_TOPS = set(_sys.stdlib_module_names) | {"numpy"}

def _receive():
    line = _reader.readline(_MAX + 1)
    if not line:
        raise RuntimeError("the code under test ended the process without reporting an answer")
    answer = _loads(line)
    if type(answer) is not dict:
        raise _Unplain("a malformed answer")
    return answer

def _proxy(name):
    def call(*args, **kwargs):
        try:
            request = {"call": name, "args": [_encode(a) for a in args],
                       "kwargs": {k: _encode(v) for k, v in kwargs.items()}}
        except _Unplain as exc:
            raise TypeError(f"only plain data crosses to the code under test: {exc}") from None
        _writer.write((_json.dumps(request) + "\n").encode())
        _writer.flush()
        try:
            answer = _receive()
            if "raised" in answer:
                kind = getattr(_builtins, str(answer["raised"]), None)
                message = str(answer.get("message", ""))[:2000]
                if isinstance(kind, type) and issubclass(kind, Exception):
                    raise kind(message)
                raise RuntimeError(f"{answer['raised']}: {message}"[:2000])
            if "unplain" in answer:
                raise _Unplain(str(answer["unplain"])[:400])
            return _decode(answer["value"])
        except (_Unplain, KeyError) as exc:
            raise TypeError(f"{name} returned {exc}") from None
    call.__name__ = call.__qualname__ = name
    return call

def _greeting():
    try:
        hello = _receive()
    except _Unplain as exc:
        raise ImportError(f"the code under test sent a malformed greeting: {exc}") from None
    if "error" in hello:
        raise ImportError(f"the code under test does not run: {str(hello['error'])[:400]}")
    calls, modules = hello.get("calls"), hello.get("modules")
    if (type(calls) is not list or type(modules) is not dict
            or not all(type(n) is str and n in _wanted for n in [*calls, *modules])
            or not all(type(m) is str for m in modules.values())):
        raise ImportError("the code under test sent a malformed greeting")
    return calls, modules

_calls, _modules = _greeting()
for _name in _calls:
    globals()[_name] = _proxy(_name)
for _name, _module in _modules.items():
    if _module.partition(".")[0] in _TRUSTED_TOPS:
        try:
            __import__(_module)
            globals()[_name] = _sys.modules[_module]
        except ImportError:
            continue
__all__ = [n for n in (*_calls, *_modules) if n in globals()]
"""
"""``solution.py`` in the tests' sandbox: the answer's functions, as calls across the socket."""

"""pytest files judged apart from the code they test: two sandboxes, joined by one socket.

The code under test runs in a sandbox of its own (:data:`SERVER`): it runs the setup and the
solution, announces its public functions and plain-data values, then answers calls. The tests
run with pytest in another sandbox, where ``solution`` is a proxy module (:data:`PROXY`): each
of its functions sends its arguments across as plain data and returns the answer decoded from
plain data (an exception of a builtin type comes back as that type). The test file, its
expected values and pytest's per-test outcomes never enter the code's process, which has no
view of the other sandbox at all (its own pid namespace, and its own uid as root); the
verdict is read from the tests' channel, so it is not self-reported.

Tests that need more than plain data from the code (instances of its classes, say) fail here;
``isolation = "in-process"`` runs them in one process as before, marked ``self_reported``.
"""

from __future__ import annotations

import asyncio
import inspect
import socket

from cascade.validators import isolated
from cascade.validators.harness import ENCODER
from cascade.validators.sandbox import Sandbox, SandboxResult

__all__ = ["PROXY", "SERVER", "run_apart"]

SERVER = (
    "from __future__ import annotations\n"
    + ENCODER
    + r"""
import json, os, socket, sys, traceback, types
_link = socket.socket(fileno=int(sys.argv[1]))
_stream = _link.makefile("rwb")
_dumps, _loads, _write, _flush, _readline = (
    json.dumps, json.loads, _stream.write, _stream.flush, _stream.readline)

def _send(item):
    _write((_dumps(item) + "\n").encode())
    _flush()

"""
    + inspect.getsource(isolated.Unplain)
    + inspect.getsource(isolated.decode)
    + r"""
with open("solution.py", encoding="utf-8") as _handle:
    _source = _handle.read()
_namespace = {"__name__": "solution"}
try:
    exec(compile(_source, "solution.py", "exec"), _namespace)
except BaseException as _exc:
    _send({"error": "".join(traceback.format_exception_only(type(_exc), _exc)).strip()})
    raise SystemExit(0)
_calls, _values = [], {}
for _name, _value in list(_namespace.items()):
    if _name.startswith("_") or isinstance(_value, types.ModuleType):
        continue
    if callable(_value):
        _calls.append(_name)
    else:
        try:
            _values[_name] = _encode(_value)
        except _Unplain:
            pass
_send({"calls": _calls, "values": _values})
while (_line := _readline()):
    _request = _loads(_line)
    try:
        _args = [decode(a) for a in _request["args"]]
        _kwargs = {k: decode(v) for k, v in _request["kwargs"].items()}
        _result = _namespace[_request["call"]](*_args, **_kwargs)
    except BaseException as _exc:
        _send({"raised": type(_exc).__name__, "message": str(_exc)[:2000]})
        continue
    try:
        _send({"value": _encode(_result)})
    except _Unplain as _exc:
        _send({"value": {"x": str(_exc)}})
"""
)
"""``python serve.py FD``: the code under test, answering calls on socket ``FD``."""

PROXY = (
    "from __future__ import annotations\n"
    + ENCODER
    + r"""
import builtins as _builtins, json as _json, os as _os, socket as _socket
"""
    + inspect.getsource(isolated.Unplain)
    + inspect.getsource(isolated.decode)
    + r"""
_link = _socket.socket(fileno=int(_os.environ["CASCADE_PEER_FD"]))
_stream = _link.makefile("rwb")

def _receive():
    line = _stream.readline()
    if not line:
        raise RuntimeError("the code under test ended the process")
    return _json.loads(line)

def _proxy(name):
    def call(*args, **kwargs):
        try:
            request = {"call": name, "args": [_encode(a) for a in args],
                       "kwargs": {k: _encode(v) for k, v in kwargs.items()}}
        except _Unplain as exc:
            raise TypeError(f"only plain data crosses to the code under test: {exc}") from None
        _stream.write((_json.dumps(request) + "\n").encode())
        _stream.flush()
        answer = _receive()
        if "raised" in answer:
            kind = getattr(_builtins, str(answer["raised"]), None)
            if isinstance(kind, type) and issubclass(kind, Exception):
                raise kind(answer["message"])
            raise RuntimeError(f"{answer['raised']}: {answer['message']}")
        try:
            return decode(answer["value"])
        except Unplain as exc:
            raise TypeError(f"{name} returned {exc}") from None
    call.__name__ = name
    return call

_hello = _receive()
if "error" in _hello:
    raise ImportError(f"the code under test does not run: {_hello['error']}")
for _name in _hello["calls"]:
    globals()[_name] = _proxy(_name)
for _name, _value in _hello["values"].items():
    globals()[_name] = decode(_value)
__all__ = [*_hello["calls"], *_hello["values"]]
"""
)
"""``solution.py`` in the tests' sandbox: the code's functions, as calls across the socket."""


async def run_apart(
    sandbox: Sandbox,
    solution: str,
    test_files: dict[str, str],
    argv: list[str],
    data: dict[str, str] | None = None,
) -> SandboxResult:
    """Run the code (``solution``) and the tests in two sandboxes joined by a socket.

    ``test_files`` and ``argv`` are the tests' sandbox's; ``{peer}`` in ``argv`` is its end of
    the socket; ``data`` files go to both. Returns the tests' result; the code's sandbox ends
    when the tests' does.
    """
    tests_end, code_end = socket.socketpair()
    code = asyncio.ensure_future(
        sandbox.run(
            {**(data or {}), "solution.py": solution, "serve.py": SERVER}, ["serve.py", "{peer}"],
            peer=code_end.fileno(), spawned=code_end.close,
        )
    )  # fmt: skip
    try:
        # Each end is closed here once its sandbox holds it: when the code's process dies, the
        # tests read the end of the stream at once, and when the tests end, the code does.
        files = {**(data or {}), **test_files, "solution.py": PROXY}
        return await sandbox.run(
            files, argv, channel=True, peer=tests_end.fileno(), spawned=tests_end.close
        )
    finally:
        tests_end.close()
        code_end.close()
        await asyncio.gather(code, return_exceptions=True)

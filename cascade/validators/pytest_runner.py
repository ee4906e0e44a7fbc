"""pytest in the sandbox, with each test's outcome reported on a channel apart from stdout.

``run_pytest.py CHANNEL PEER ARGS`` (:data:`PYTEST_RUNNER`) runs pytest with a plugin that
writes the number of tests collected, each test's outcome and the session's end to the
sandbox's channel descriptor; :func:`with_import` adds the implicit ``from solution import *``.
A run passes only when every collected test reported a pass and the session reported its end.
Apart from the code (the default), ``solution`` is a proxy and nothing of the code's runs here.
With ``isolation="in-process"`` the code runs in pytest's own process: it could end it early or
forge these lines, so such verdicts are marked ``self_reported``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

__all__ = ["PYTEST_RUNNER", "PytestReport", "channel_items", "pytest_report", "with_import"]


@dataclasses.dataclass(frozen=True, slots=True)
class PytestReport:
    """Tests collected, the session's exit status, and the passes and failures reported."""

    collected: int | None
    finished: int | None
    passed: int
    failed: int
    collect_errors: tuple[str, ...] = ()
    """Why test files could not be collected (the code under test failed to import, say)."""

    @property
    def all_passed(self) -> bool:
        """Every collected test reported a pass, and the session reported its end."""
        return (
            self.finished == 0
            and bool(self.collected)
            and self.passed == self.collected
            and not self.failed
            and not self.collect_errors
        )


def channel_items(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects written to a sandbox's channel, one per line; anything else is skipped."""
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):  # a line the code under test forged, in-process
            continue
        if isinstance(item, dict):
            yield item


def with_import(tests: str, module: str) -> str:
    r"""``tests`` with ``from module import *`` after its docstring and ``__future__`` imports.

    Nothing is added when the tests import ``module`` themselves.

    >>> with_import('from __future__ import annotations\nx = 1\n', "m").splitlines()
    ['from __future__ import annotations', 'from m import *  # noqa: F403', 'x = 1']
    """
    try:
        body = ast.parse(tests).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        body = []  # pytest reports the error itself
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Import) and any(a.name == module for a in node.names):
            return tests
        if isinstance(node, ast.ImportFrom) and node.module == module:
            return tests
    after = 0
    for position, node in enumerate(body):
        docstring = (
            position == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
        if not docstring and not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            break
        after = node.end_lineno or 0
    lines = tests.splitlines(keepends=True)
    header = f"from {module} import *  # noqa: F403\n"
    if after and not lines[after - 1].endswith("\n"):
        lines[after - 1] += "\n"
    return "".join([*lines[:after], header, *lines[after:]])


def pytest_report(text: str) -> PytestReport:
    """What the runner's plugin wrote to the channel."""
    collected = finished = None
    passed = failed = 0
    errors: list[str] = []
    for item in channel_items(text):
        if isinstance(item.get("collected"), int):
            collected = item["collected"]
        elif isinstance(item.get("finished"), int):
            finished = item["finished"]
        elif isinstance(item.get("collect_error"), str):
            errors.append(item["collect_error"][:400])
        elif item.get("when") == "call" and item.get("outcome") == "passed":
            passed += 1
        elif item.get("outcome") == "failed":
            failed += 1
    return PytestReport(collected, finished, passed, failed, tuple(errors))


PYTEST_RUNNER = r"""
import json, os, sys
_channel = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
_dumps, _write, _flush = json.dumps, _channel.write, _channel.flush
def _send(item):
    _write(_dumps(item) + "\n")
    _flush()
class _Outcomes:
    def pytest_collection_finish(self, session):
        _send({"collected": len(session.items)})
    def pytest_collectreport(self, report):
        if report.failed:
            lines = str(report.longrepr).strip().splitlines()
            errors = [l for l in lines if l.startswith("E ")] or lines[-1:]
            _send({"collect_error": " | ".join(e[1:].strip() for e in errors[-2:])})
    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.failed:
            _send({"test": report.nodeid, "when": report.when, "outcome": report.outcome})
    def pytest_sessionfinish(self, session, exitstatus):
        _send({"finished": int(exitstatus)})
if sys.argv[2] != "-":
    os.environ["CASCADE_PEER_FD"] = sys.argv[2]  # where the proxy "solution" finds the code
import pytest
raise SystemExit(pytest.main(sys.argv[3:], plugins=[_Outcomes()]))
"""

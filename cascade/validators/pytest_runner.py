"""pytest in the sandbox, with each test's outcome reported on a channel apart from stdout.

``run_pytest.py`` (:data:`PYTEST_RUNNER`) runs pytest with a plugin that writes the number of
tests collected, each test's outcome and the session's end to the sandbox's channel descriptor.
A run passes only when every collected test reported a pass and the session reported its end:
code that ends the process early (``os._exit(0)`` on import, say) leaves pytest's exit code at
0 but reports nothing, and fails. The code under test runs in pytest's own process, so it could
still forge these lines: such verdicts are marked ``self_reported``.
"""

from __future__ import annotations

import dataclasses
import json

__all__ = ["PYTEST_RUNNER", "PytestReport", "pytest_report"]


@dataclasses.dataclass(frozen=True, slots=True)
class PytestReport:
    """Tests collected, the session's exit status, and the passes and failures reported."""

    collected: int | None
    finished: int | None
    passed: int
    failed: int

    @property
    def all_passed(self) -> bool:
        """Every collected test reported a pass, and the session reported its end."""
        return (
            self.finished == 0
            and bool(self.collected)
            and self.passed == self.collected
            and not self.failed
        )


def pytest_report(text: str) -> PytestReport:
    """What the runner's plugin wrote to the channel."""
    collected = finished = None
    passed = failed = 0
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("collected"), int):
            collected = item["collected"]
        elif isinstance(item.get("finished"), int):
            finished = item["finished"]
        elif item.get("when") == "call" and item.get("outcome") == "passed":
            passed += 1
        elif item.get("outcome") == "failed":
            failed += 1
    return PytestReport(collected, finished, passed, failed)


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
    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.failed:
            _send({"test": report.nodeid, "when": report.when, "outcome": report.outcome})
    def pytest_sessionfinish(self, session, exitstatus):
        _send({"finished": int(exitstatus)})
import pytest
raise SystemExit(pytest.main(sys.argv[2:], plugins=[_Outcomes()]))
"""

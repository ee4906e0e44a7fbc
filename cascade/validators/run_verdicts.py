"""How a sandboxed test run ends as a verdict: killed, failed (with the first failures), passed.

Each function returns the verdict and whether it may be kept in the verdict cache. A run flagged
as timed out whose tests had reported their end (the host was too busy to see the process exit
before the deadline) is judged from what they reported, and never kept: the tests' channel is
written by the tests' sandbox alone, which holds no code of the answer.
"""

from __future__ import annotations

import re

from cascade.types import Verdict
from cascade.validators.pytest_runner import channel_items, pytest_report
from cascade.validators.sandbox import Limits, SandboxResult

__all__ = ["ended_badly", "failed", "finished", "pytest_verdict", "snippets_verdict", "tail"]

_FAILED = re.compile(r"^FAILED \S+?::(\S+)(?: - (.*))?$", re.MULTILINE)
_MAX_LISTED = 3
_EXIT_FEEDBACK = "The code must not exit or end the process while it is tested."


def finished(result: SandboxResult) -> bool:
    """Whether the tests reported their end on the channel (the snippet runner, or pytest)."""
    for item in channel_items(result.channel):
        if item.get("stage") in ("done", "solution", "setup") or "finished" in item:
            return True
    return False


def ended_badly(result: SandboxResult, limits: Limits) -> Verdict | None:
    """A failure naming the limit that killed the run, if one did."""
    if result.timed_out:
        reason = f"the tests were killed at the wall-clock limit of {limits.wall_s:g} s"
    elif result.signal_name in ("SIGXCPU", "SIGKILL") and result.duration_s < limits.wall_s:
        reason = f"the tests were killed by {result.signal_name} (CPU limit {limits.cpu_s} s)"
    elif result.signal_name == "SIGXFSZ":
        reason = f"the tests wrote a file over the limit of {limits.file_mb} MB"
    elif result.signal_name is not None:
        reason = f"the tests were killed by {result.signal_name}"
    else:
        return None
    return Verdict(False, reason=reason, feedback="The code must finish quickly: " + reason + ".")


def snippets_verdict(
    result: SandboxResult, total: int, code: str, limits: Limits
) -> tuple[Verdict, bool]:
    """The snippet runner's verdict, read from its channel, and whether to keep it."""
    stages: dict[str, str] = {}
    outcomes: dict[int, str | None] = {}
    for item in channel_items(result.channel):
        if isinstance(item.get("stage"), str):
            stages[item["stage"]] = str(item.get("error", ""))[:600]
        elif isinstance(item.get("i"), int):
            outcomes[item["i"]] = None if item.get("ok") is True else str(item.get("error"))
    ended_itself = finished(result)
    keep = not (ended_itself and result.timed_out)
    if not ended_itself and (ended := ended_badly(result, limits)) is not None:
        return ended, keep
    for stage in ("solution", "setup"):
        if stage in stages:
            reason = f"the {stage} does not run: {stages[stage]}"
            return Verdict(False, reason=reason, feedback=f"Fix this error: {stages[stage]}"), keep
    if "done" not in stages or len(outcomes) != total:
        last = tail(result.stderr or result.stdout)
        return Verdict(
            False,
            reason="the tests ended without reporting every outcome: the code ended the process"
            f" (exit code {result.returncode}){last}",
            feedback=_EXIT_FEEDBACK,
        ), keep
    failures = [f"test {i + 1}: {why}" for i, why in sorted(outcomes.items()) if why is not None]
    if not failures:
        return Verdict(True, value=code), keep
    return failed(failures, total), keep


def pytest_verdict(result: SandboxResult, code: str, limits: Limits) -> tuple[Verdict, bool]:
    """A pytest run's verdict and whether to keep it: from the plugin's report, not the exit."""
    report = pytest_report(result.channel)
    keep = not (report.finished is not None and result.timed_out)
    if report.finished is None and (ended := ended_badly(result, limits)) is not None:
        return ended, keep
    if report.all_passed:
        return Verdict(True, value=code), keep
    failures = [f"{name}: {why or 'failed'}" for name, why in _FAILED.findall(result.stdout)]
    if result.returncode == 1 and failures:
        return failed(failures, None), keep
    if report.collect_errors:
        why = report.collect_errors[0]
        return Verdict(
            False,
            reason=f"the tests could not be collected: {why}",
            feedback=f"The code must import cleanly and stay running. Fix this error: {why}",
        ), keep
    if result.returncode == 5 or (report.finished is not None and report.collected == 0):
        return Verdict(False, reason="the tests hold no test functions", fault=True), False
    last = tail(result.stdout)
    if result.returncode == 0:
        return Verdict(
            False,
            reason="the tests ended without reporting every test's outcome (did the code"
            f" exit or end the process?){last}",
            feedback=_EXIT_FEEDBACK,
        ), keep
    return Verdict(
        False,
        reason=f"the tests could not run (pytest exit {result.returncode}){last}",
        feedback="The code must import cleanly. Fix this error" + last,
    ), keep


def failed(failures: list[str], total: int | None) -> Verdict:
    """A failure naming how many tests failed and the first few, for the model's feedback."""
    count = f"{len(failures)} of {total}" if total is not None else str(len(failures))
    listed = "\n".join(failures[:_MAX_LISTED])
    return Verdict(
        False,
        reason=f"{count} test(s) failed; first: {failures[0]}",
        feedback=f"The code fails these tests:\n{listed}",
    )


def tail(text: str) -> str:
    """The last error lines of an output, as ``: a | b | c`` for a reason (or ``""``)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.lstrip().startswith("E ")] or lines[-3:]
    return (": " + " | ".join(line.strip() for line in errors[-3:]))[:400] if errors else ""

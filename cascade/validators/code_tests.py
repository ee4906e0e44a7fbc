"""``passes_tests(tests)``: the generated code passes tests, run inside a :class:`Sandbox`.

Tests are either a pytest file (a string or a path) that imports the candidate as ``solution``,
or a list of snippets of plain asserts, run one after another in the candidate's namespace, as
recorded benchmark datasets give them. With no tests given, each task's own ``tests`` field is
used, or its ``visible_tests`` (with ``test_setup``), in the datasets' format. A task with no
tests is a fault (a misconfigured job), or with ``missing="fail"`` an ordinary failure (the
tier's answer cannot be vouched for, so the task escalates).

When the task names an ``entry_point`` that the answer does not define, the answer's function
is bound to that name where only one could be meant, and the verdict says so (see
:mod:`cascade.validators.binding`). With a :class:`VerdictCache`, a verdict already reached
for the same code and tests is read back instead of run again.

pytest runs with ``--noconftest``, without its cache and with plugin autoload off. The sandbox
keeps the host safe from the candidate; a candidate written to cheat its own test run (by
patching the runner from inside) could still fake a pass, so do not treat a pass as proof
against a hostile model.

>>> passes_tests(["assert add(2, 2) == 4"])
passes_tests(1 snippets)
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from cascade.errors import ConfigError
from cascade.store.verdicts import VerdictCache, verdict_key
from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.binding import bind_entry_point
from cascade.validators.code import MAX_CODE_CHARS, extract_code, refuse_code
from cascade.validators.sandbox import Limits, Sandbox, SandboxResult

__all__ = ["passes_tests"]

_MODULE = "solution"
_PYTEST = ["-m", "pytest", "-q", "-rf", "--tb=short", "--color=no", "--noconftest"]
_PYTEST += ["-p", "no:cacheprovider", "-o", "addopts=", "--rootdir=/sandbox"]
_FAILED = re.compile(r"^FAILED \S+?::(\S+)(?: - (.*))?$", re.MULTILINE)
_MAX_LISTED = 3
_PLAIN_NAME = re.compile(r"[\w-][\w.-]*")
_HARNESS = """
import json, sys, traceback
marker = sys.argv[1]
with open("cases.json", encoding="utf-8") as handle:
    cases = json.load(handle)
namespace = {"__name__": "solution"}
failures = []
for label, code in cases:
    try:
        exec(compile(code, label, "exec"), namespace)
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == label]
        lines = code.splitlines()
        where = frames[-1].lineno if frames else None
        line = lines[where - 1].strip() if where and where <= len(lines) else ""
        message = f"{type(exc).__name__}: {exc}".rstrip(": ")
        failures.append(f"{label}: {line} ({message})" if line else f"{label}: {message}")
        if label in ("setup", "solution"):
            break
print(marker + json.dumps({"cases": len(cases), "failures": failures}))
"""


_HARNESS_VERSION = 1
"""Bumped whenever the way tests are run changes, so that cached verdicts are not reused."""

Missing = Literal["fault", "fail"]


class _PassesTests:
    cost_class = CostClass.PROCESS

    def __init__(
        self,
        tests: str | tuple[str, ...] | None,
        setup: str,
        files: Mapping[str, str],
        sandbox: Sandbox,
        max_chars: int,
        missing: Missing,
        cache: VerdictCache | None,
    ) -> None:
        self._tests = tests
        self._setup = setup
        self._files = dict(files)
        self._sandbox = sandbox
        self._max_chars = max_chars
        self._missing = missing
        self.cache = cache

    def __repr__(self) -> str:
        if self._tests is None:
            return "passes_tests()"
        if isinstance(self._tests, tuple):
            return f"passes_tests({len(self._tests)} snippets)"
        return "passes_tests(pytest file)"

    def _tests_for(self, attempt: Attempt) -> tuple[str | tuple[str, ...], str] | None:
        if self._tests is not None:
            return self._tests, self._setup
        extra = attempt.task.extra
        tests = extra.get("tests", extra.get("visible_tests"))
        setup = extra.get("test_setup") or ""
        if isinstance(tests, str) and tests.strip():
            return tests, str(setup)
        if isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests):
            return tuple(tests), str(setup)
        return None

    async def __call__(self, attempt: Attempt) -> Verdict:
        found = self._tests_for(attempt)
        if found is None:
            reason = "the task carries no tests to run"
            return Verdict(False, reason=reason, fault=self._missing == "fault")
        code = extract_code(attempt.output)
        if (refused := refuse_code(code, self._max_chars)) is not None:
            return refused
        tests, setup = found
        entry_point = attempt.task.extra.get("entry_point")
        note = None
        if isinstance(entry_point, str) and entry_point.isidentifier():
            bound = bind_entry_point(
                code, entry_point, tests if isinstance(tests, tuple) else [tests]
            )
            if bound.problem is not None:
                feedback = f"Define the function {entry_point} that the task asks for."
                return Verdict(False, reason=bound.problem, feedback=feedback)
            code, note = bound.code, bound.note
        verdict = await self._judge(code, setup, tests)
        if note is not None and verdict.passed:
            verdict = dataclasses.replace(verdict, reason=note)
        return verdict

    async def _judge(self, code: str, setup: str, tests: str | tuple[str, ...]) -> Verdict:
        """Run the tests, or read the verdict the same run reached before."""
        key = None
        if self.cache is not None:
            limits = repr(self._sandbox.limits)
            key = verdict_key(_HARNESS_VERSION, code, setup, tests, self._files, limits)
            if (kept := self.cache.get(key)) is not None:
                return dataclasses.replace(kept, value=code if kept.passed else None)
        if isinstance(tests, tuple):
            verdict, keep = await self._run_snippets(code, setup, tests)
        else:
            verdict, keep = await self._run_pytest(code, setup, tests)
        if key is not None and keep:
            assert self.cache is not None  # a key is made only with a cache
            self.cache.put(key, verdict)
        return verdict

    async def _run_snippets(
        self, code: str, setup: str, snippets: tuple[str, ...]
    ) -> tuple[Verdict, bool]:
        cases = [["setup", setup], ["solution", code]]
        cases += [[f"test {i + 1}", snippet] for i, snippet in enumerate(snippets)]
        marker = f"CASCADE-RESULT-{secrets.token_hex(8)}:"
        files = {**self._files, "run.py": _HARNESS, "cases.json": json.dumps(cases)}
        result = await self._sandbox.run(files, ["run.py", marker])
        if (ended := _ended_badly(result, self._sandbox.limits)) is not None:
            return ended, True
        lines = [line for line in result.stdout.splitlines() if line.startswith(marker)]
        if not lines:
            tail = _tail(result.stderr or result.stdout)
            return Verdict(
                False,
                reason=f"the tests ended without reporting (exit code {result.returncode}){tail}",
                feedback="The code must not exit or end the process while it is tested.",
            ), True
        failures: list[str] = json.loads(lines[-1][len(marker) :])["failures"]
        if not failures:
            return Verdict(True, value=code), True
        return _failed(failures, len(snippets)), True

    async def _run_pytest(self, code: str, setup: str, tests: str) -> tuple[Verdict, bool]:
        header = "" if re.search(rf"\b(from|import) {_MODULE}\b", tests) else _import_all()
        files = {
            **self._files,
            f"{_MODULE}.py": setup + "\n" + code,
            f"test_{_MODULE}.py": header + tests,
        }
        result = await self._sandbox.run(files, [*_PYTEST, f"test_{_MODULE}.py"])
        if (ended := _ended_badly(result, self._sandbox.limits)) is not None:
            return ended, True
        if result.returncode == 0:
            return Verdict(True, value=code), True
        failures = [f"{name}: {why or 'failed'}" for name, why in _FAILED.findall(result.stdout)]
        if result.returncode == 1 and failures:
            return _failed(failures, None), True
        if result.returncode == 5:
            return Verdict(False, reason="the tests hold no test functions", fault=True), False
        tail = _tail(result.stdout)
        return Verdict(
            False,
            reason=f"the tests could not run (pytest exit {result.returncode}){tail}",
            feedback="The code must import cleanly. Fix this error" + tail,
        ), True


def _import_all() -> str:
    return f"from {_MODULE} import *  # noqa: F403\n"


def _ended_badly(result: SandboxResult, limits: Limits) -> Verdict | None:
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


def _failed(failures: list[str], total: int | None) -> Verdict:
    count = f"{len(failures)} of {total}" if total is not None else str(len(failures))
    listed = "\n".join(failures[:_MAX_LISTED])
    return Verdict(
        False,
        reason=f"{count} test(s) failed; first: {failures[0]}",
        feedback=f"The code fails these tests:\n{listed}",
    )


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.lstrip().startswith("E ")] or lines[-3:]
    return (": " + " | ".join(line.strip() for line in errors[-3:]))[:400] if errors else ""


def passes_tests(
    tests: str | Path | Sequence[str] | None = None,
    *,
    setup: str = "",
    files: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    sandbox: Sandbox | None = None,
    max_chars: int = MAX_CODE_CHARS,
    missing: Missing = "fault",
    cache: VerdictCache | None = None,
) -> _PassesTests:
    """Pass when the code in the output passes ``tests`` in the sandbox; the result is the code.

    ``tests`` is pytest code (a string, or a ``Path`` to a file), a list of assert snippets, or
    ``None`` to take each task's own tests. ``files`` are data files the tests read, written
    beside them. ``limits`` bounds time, memory, files and processes. ``missing`` says what a
    task without tests gets: a ``"fault"`` or a plain ``"fail"``. ``cache`` keeps verdicts.
    """
    if missing not in ("fault", "fail"):
        raise ConfigError(f"missing must be 'fault' or 'fail', not {missing!r}")
    chosen: str | tuple[str, ...] | None
    if isinstance(tests, Path):
        try:
            chosen = tests.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read tests {tests}: {exc}") from exc
    elif isinstance(tests, str) or tests is None:
        chosen = tests
    elif all(isinstance(snippet, str) for snippet in tests):
        chosen = tuple(tests)
    else:
        raise ConfigError("tests must be pytest code, a path, or a list of snippets")
    for name in files or {}:
        if not _PLAIN_NAME.fullmatch(name) or name in ("run.py", "cases.json"):
            raise ConfigError(f"test files must have plain, unreserved names, got {name!r}")
    sandbox = sandbox or Sandbox(limits)
    return _PassesTests(chosen, setup, files or {}, sandbox, max_chars, missing, cache)

"""``passes_tests(tests)``: the generated code passes tests, each side in a :class:`Sandbox`.

Tests are either a pytest file (a string or a path) that imports the candidate as ``solution``
(or reaches its functions by name: ``from solution import *`` is then added after the file's
docstring and ``__future__`` imports), or a list of snippets of asserts, run one after another
in one namespace, as recorded benchmark datasets give them. With no tests given, each task's
own ``tests`` field is used, or its ``visible_tests`` (with ``test_setup``), in the datasets'
format. A task with no tests is a fault (a misconfigured job), or with ``missing="fail"`` an
ordinary failure (the tier's answer cannot be vouched for, so the task escalates).

When the task names an ``entry_point`` that the answer does not define, the answer's function
is bound to that name where only one could be meant, and the verdict says so (see
:mod:`cascade.validators.binding`). With a :class:`VerdictCache`, a verdict already reached
for the same code and tests is read back instead of run again.

Every test form runs apart from the answer (:mod:`cascade.validators.isolated`): the tests, with
their setup, imports, expected values and every operation on the answer's results, in a sandbox
holding no code of the answer; the answer in another, serving only its functions that the tests
call, with plain data each way (:mod:`cascade.validators.wire`). What the answer prints or
writes counts for nothing. A run passes only when every test reported a pass.

``isolation="in-process"`` runs the tests in the answer's process instead (for tests that need
the answer's own objects). The answer could then fake its result, so such verdicts are marked
``self_reported``, and their passes are refused unless ``isolated_only=False`` as well.

A pass proves that the code computes the expected values for the tests' inputs, and nothing
more: a lookup table that hard-codes the visible cases passes visible tests too. Hidden tests,
or agreement with another model, are the answer to that.

pytest runs with ``--noconftest``, without its cache and with plugin autoload off. The sandbox
keeps the host safe from the candidate.

>>> passes_tests(["assert add(2, 2) == 4"])
passes_tests(1 snippets)
"""

from __future__ import annotations

import asyncio
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
from cascade.validators.isolated import SNIPPET_RUNNER, compiled, crossing_names
from cascade.validators.pytest_proxy import Apart, run_apart
from cascade.validators.pytest_runner import PYTEST_RUNNER, with_import
from cascade.validators.run_verdicts import (
    ended_badly,
    failed,
    finished,
    pytest_verdict,
    snippets_verdict,
    tail,
)
from cascade.validators.sandbox import Limits, Sandbox

__all__ = ["passes_tests"]

_MODULE = "solution"
_PYTEST = ["-q", "-rf", "--tb=short", "--color=no", "--noconftest"]
_PYTEST += ["-p", "no:cacheprovider", "-o", "addopts=", "--rootdir=/sandbox"]
_PLAIN_NAME = re.compile(r"[\w-][\w.-]*")
_RESERVED = ("run.py", "cases.json", "run_pytest.py", "serve.py", "solution.py")
_IN_PROCESS = """
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


_HARNESS_VERSION = 6
"""Bumped whenever the way tests are run changes, so that cached verdicts are not reused."""

Missing = Literal["fault", "fail"]
Isolation = Literal["apart", "in-process"]


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
        isolated_only: bool = True,
        isolation: Isolation = "apart",
    ) -> None:
        self._tests = tests
        self._setup = setup
        self._files = dict(files)
        self._sandbox = sandbox
        self._max_chars = max_chars
        self._missing = missing
        self.cache = cache
        self._isolated_only = isolated_only
        self._isolation = isolation

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
        if (unwritable := _unwritable(code)) is not None:
            return unwritable
        tests, setup = found
        sources = list(tests) if isinstance(tests, tuple) else [tests]
        entry_point = attempt.task.extra.get("entry_point")
        note = None
        if not (isinstance(entry_point, str) and entry_point.isidentifier()):
            entry_point = None
        else:
            bound = bind_entry_point(code, entry_point, sources)
            if bound.problem is not None:
                feedback = f"Define the function {entry_point} that the task asks for."
                return Verdict(False, reason=bound.problem, feedback=feedback)
            code, note = bound.code, bound.note
        names = crossing_names([setup, *sources], entry_point)
        verdict = await self._judge(code, setup, tests, names)
        if note is not None and verdict.passed:
            verdict = dataclasses.replace(verdict, reason=note)
        return verdict

    async def _judge(
        self, code: str, setup: str, tests: str | tuple[str, ...], names: tuple[str, ...]
    ) -> Verdict:
        """Run the tests, or read the verdict the same run reached before."""
        key = None
        if self.cache is not None:
            limits = repr(self._sandbox.limits)
            key = verdict_key(
                _HARNESS_VERSION,
                code,
                setup,
                tests,
                self._files,
                limits,
                self._isolated_only,
                self._isolation,
                names,
            )
            if (kept := self.cache.get(key)) is not None:
                # The cache keeps no mark: every verdict of an in-process run is self-reported.
                in_process = self._isolation == "in-process"
                value = code if kept.passed else None
                return dataclasses.replace(kept, value=value, self_reported=in_process)
        if self._isolation == "in-process":
            verdict, keep = await self._run_in_process(code, setup, tests)
        elif isinstance(tests, tuple):
            verdict, keep = await self._run_snippets(code, setup, tests, names)
        else:
            verdict, keep = await self._run_pytest(code, setup, tests, names)
        if key is not None and keep:
            assert self.cache is not None  # a key is made only with a cache
            self.cache.put(key, verdict)
        return verdict

    async def _run_snippets(
        self, code: str, setup: str, snippets: tuple[str, ...], names: tuple[str, ...]
    ) -> tuple[Verdict, bool]:
        built = [compiled(snippet, f"test {i + 1}") for i, snippet in enumerate(snippets)]
        cases = json.dumps({"setup": setup, "snippets": list(snippets), "compiled": built})
        files = {"run.py": SNIPPET_RUNNER, "cases.json": cases}
        apart = await run_apart(
            self._sandbox, setup + "\n" + code, files, ["run.py", "{channel}", "{peer}"], names,
            self._files,
        )  # fmt: skip
        limits = self._sandbox.limits
        judged = await asyncio.to_thread(snippets_verdict, apart.tests, len(snippets), code, limits)
        return _blame_the_code(*judged, apart, limits)

    async def _run_pytest(
        self, code: str, setup: str, tests: str, names: tuple[str, ...]
    ) -> tuple[Verdict, bool]:
        files = {f"test_{_MODULE}.py": with_import(tests, _MODULE), "run_pytest.py": PYTEST_RUNNER}
        argv = ["run_pytest.py", "{channel}", "{peer}", *_PYTEST, f"test_{_MODULE}.py"]
        apart = await run_apart(self._sandbox, setup + "\n" + code, files, argv, names, self._files)
        limits = self._sandbox.limits
        judged = await asyncio.to_thread(pytest_verdict, apart.tests, code, limits)
        return _blame_the_code(*judged, apart, limits)

    async def _run_in_process(
        self, code: str, setup: str, tests: str | tuple[str, ...]
    ) -> tuple[Verdict, bool]:
        """The tests in the answer's own process: self-reported, and refused by default."""
        if isinstance(tests, tuple):
            verdict, keep = await self._snippets_in_process(code, setup, tests)
        else:
            files = {f"test_{_MODULE}.py": with_import(tests, _MODULE)}
            files |= {"run_pytest.py": PYTEST_RUNNER, **self._files}
            files[f"{_MODULE}.py"] = setup + "\n" + code
            argv = ["run_pytest.py", "{channel}", "-", *_PYTEST, f"test_{_MODULE}.py"]
            result = await self._sandbox.run(files, argv, channel=True)
            judged = await asyncio.to_thread(pytest_verdict, result, code, self._sandbox.limits)
            verdict, keep = judged
        if verdict.fault:
            # The code shared the tests' process: whatever went wrong, it could have caused it.
            reason = f"{verdict.reason} (in the code's own process)"
            verdict, keep = Verdict(False, reason=reason), False
        if verdict.passed and self._isolated_only:
            reason = ("the tests ran in the code's own process, which could have forged this"
                      " pass (isolated_tests_only)")  # fmt: skip
            return Verdict(False, reason=reason, self_reported=True), keep
        return dataclasses.replace(verdict, self_reported=True), keep

    async def _snippets_in_process(
        self, code: str, setup: str, snippets: tuple[str, ...]
    ) -> tuple[Verdict, bool]:
        cases = [["setup", setup], ["solution", code]]
        cases += [[f"test {i + 1}", snippet] for i, snippet in enumerate(snippets)]
        marker = f"CASCADE-RESULT-{secrets.token_hex(8)}:"
        files = {**self._files, "run.py": _IN_PROCESS, "cases.json": json.dumps(cases)}
        result = await self._sandbox.run(files, ["run.py", marker])
        lines = [line for line in result.stdout.splitlines() if line.startswith(marker)]
        keep = not (lines and result.timed_out)
        if not lines and (ended := ended_badly(result, self._sandbox.limits)) is not None:
            return ended, keep
        try:
            failures = json.loads(lines[-1][len(marker) :])["failures"]
            listed = [str(f) for f in failures]
        except (IndexError, ValueError, TypeError, KeyError, RecursionError):
            last = tail(result.stderr or result.stdout)
            return Verdict(
                False,
                reason=f"the tests ended without reporting (exit code {result.returncode}){last}",
                feedback="The code must not exit or end the process while it is tested.",
            ), keep
        if not listed:
            return Verdict(True, value=code), keep
        return failed(listed, len(snippets)), keep


def _unwritable(code: str) -> Verdict | None:
    """A failure for code that cannot be written as UTF-8 (a lone surrogate), or ``None``."""
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as exc:
        reason = f"the code holds a character that is not valid UTF-8 at position {exc.start}"
        return Verdict(False, reason=reason, feedback=f"Fix this: {reason}.")
    return None


def _blame_the_code(
    verdict: Verdict, keep: bool, apart: Apart, limits: Limits
) -> tuple[Verdict, bool]:
    """A failure whose answer was killed at a limit says so, rather than what the tests saw.

    Not kept when the tests had reported their end: the answer's process may have been seen
    late by a busy host, not killed.
    """
    if verdict.passed or verdict.fault:
        return verdict, keep
    ended = ended_badly(apart.code, limits)
    if ended is None:
        return verdict, keep
    reason = ended.reason.replace("the tests were", "the code was")
    late = apart.code.timed_out and finished(apart.tests)
    return dataclasses.replace(ended, reason=reason), keep and not late


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
    isolated_only: bool = True,
    isolation: Isolation = "apart",
) -> _PassesTests:
    """Pass when the code in the output passes ``tests`` in the sandbox; the result is the code.

    ``tests`` is pytest code (a string, or a ``Path`` to a file), a list of assert snippets, or
    ``None`` to take each task's own tests. ``files`` are data files the tests read, written
    beside them. ``limits`` bounds time, memory, files and processes. ``missing`` says what a
    task without tests gets: a ``"fault"`` or a plain ``"fail"``. ``cache`` keeps verdicts.
    ``isolation`` says where the tests run: ``"apart"`` from the code, which they reach through
    proxy functions with plain data only, or ``"in-process"`` (an explicit opt-in for tests that
    need the code's own objects), whose verdicts are ``self_reported``; ``isolated_only`` (the
    default) refuses such passes, and ``isolated_only=False`` accepts them.
    """
    if isolation not in ("apart", "in-process"):
        raise ConfigError(f"isolation must be 'apart' or 'in-process', not {isolation!r}")
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
        if not _PLAIN_NAME.fullmatch(name) or name in _RESERVED or name.startswith("_cascade"):
            raise ConfigError(f"test files must have plain, unreserved names, got {name!r}")
    sandbox = sandbox or Sandbox(limits)
    return _PassesTests(
        chosen, setup, files or {}, sandbox, max_chars, missing, cache, isolated_only, isolation
    )

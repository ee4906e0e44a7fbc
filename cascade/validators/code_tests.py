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

Assert snippets in the recognised forms (``assert CALL == EXPECTED``, ``assert CALL``,
``assert not CALL``, ``assert CALL is None``, ``math.isclose``, ``abs(CALL - X) < eps``, and
comparisons, ``sorted``, ``set``, ``len`` around them) are judged on the trusted side
(:mod:`cascade.validators.isolated`): the candidate's process only computes the values of the
calls and sends them back as plain data on a channel of their own; the expected values never
enter it, and what it prints counts for nothing. pytest files run in a sandbox of their own and
reach the code, in another, through a proxy ``solution`` module that passes plain data only
(:mod:`cascade.validators.pytest_proxy`); a run passes only when every collected test reports a
pass, whatever pytest's exit code. Snippets in other forms, and pytest files with
``isolation="in-process"`` (for tests that need the code's own objects), run with the code in the
tests' process, which could fake its result: their verdicts are marked ``self_reported``, and
``isolated_only=True`` rejects such answers instead.

A pass proves that the code computes the expected values for the tests' inputs, and nothing
more: a lookup table that hard-codes the visible cases passes visible tests too. Hidden tests,
or agreement with another model, are the answer to that.

pytest runs with ``--noconftest``, without its cache and with plugin autoload off. The sandbox
keeps the host safe from the candidate.

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
from cascade.validators.harness import HARNESS
from cascade.validators.isolated import Check, Unplain, decode, split
from cascade.validators.pytest_proxy import run_apart
from cascade.validators.pytest_runner import PYTEST_RUNNER, channel_items
from cascade.validators.run_verdicts import ended_badly, failed, pytest_verdict, tail
from cascade.validators.sandbox import Limits, Sandbox, SandboxResult

__all__ = ["passes_tests"]

_MODULE = "solution"
_PYTEST = ["-q", "-rf", "--tb=short", "--color=no", "--noconftest"]
_PYTEST += ["-p", "no:cacheprovider", "-o", "addopts=", "--rootdir=/sandbox"]
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


_HARNESS_VERSION = 5
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
        isolated_only: bool = False,
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
            key = verdict_key(
                _HARNESS_VERSION,
                code,
                setup,
                tests,
                self._files,
                limits,
                self._isolated_only,
                self._isolation,
            )
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
        checks = split(snippets)
        if checks is not None:
            return await self._run_isolated(code, setup, checks, len(snippets)), True
        if self._isolated_only:
            reason = ("the tests are not all plain asserts over calls, so they cannot be checked"
                      " apart from the code (isolated_tests_only)")  # fmt: skip
            return Verdict(False, reason=reason), False
        verdict, keep = await self._run_in_process(code, setup, snippets)
        return dataclasses.replace(verdict, self_reported=True), keep

    async def _run_isolated(
        self, code: str, setup: str, checks: list[Check], total: int
    ) -> Verdict:
        remote = [source for check in checks for source in check.remote]
        cases = {"setup": setup, "solution": code, "remote": remote}
        files = {**self._files, "run.py": HARNESS, "cases.json": json.dumps(cases)}
        result = await self._sandbox.run(files, ["run.py", "{channel}"], channel=True)
        if (ended := ended_badly(result, self._sandbox.limits)) is not None:
            return ended
        sent, stages = _read_channel(result.channel)
        for stage in ("setup", "solution"):
            if stage in stages:
                reason = f"the {stage} does not run: {stages[stage]}"
                return Verdict(False, reason=reason, feedback=f"Fix this error: {stages[stage]}")
        if "loaded" not in stages:
            last = tail(result.stderr or result.stdout)
            return Verdict(
                False,
                reason="the tests ended without reporting: the code ended the process before"
                f" they ran (exit code {result.returncode}){last}",
                feedback="The code must not exit or end the process while it is tested.",
            )
        failures: list[str] = []
        position = 0
        for check in checks:
            indices = range(position, position + len(check.remote))
            position += len(check.remote)
            why = _judge_check(check, [sent.get(i) for i in indices], result)
            if why is not None:
                failures.append(f"test {check.snippet + 1}: {check.source} ({why})")
        if not failures:
            return Verdict(True, value=code)
        return failed(failures, total)

    async def _run_in_process(
        self, code: str, setup: str, snippets: tuple[str, ...]
    ) -> tuple[Verdict, bool]:
        cases = [["setup", setup], ["solution", code]]
        cases += [[f"test {i + 1}", snippet] for i, snippet in enumerate(snippets)]
        marker = f"CASCADE-RESULT-{secrets.token_hex(8)}:"
        files = {**self._files, "run.py": _HARNESS, "cases.json": json.dumps(cases)}
        result = await self._sandbox.run(files, ["run.py", marker])
        if (ended := ended_badly(result, self._sandbox.limits)) is not None:
            return ended, True
        lines = [line for line in result.stdout.splitlines() if line.startswith(marker)]
        if not lines:
            last = tail(result.stderr or result.stdout)
            return Verdict(
                False,
                reason=f"the tests ended without reporting (exit code {result.returncode}){last}",
                feedback="The code must not exit or end the process while it is tested.",
            ), True
        failures: list[str] = json.loads(lines[-1][len(marker) :])["failures"]
        if not failures:
            return Verdict(True, value=code), True
        return failed(failures, len(snippets)), True

    async def _run_pytest(self, code: str, setup: str, tests: str) -> tuple[Verdict, bool]:
        """Pytest on the code: apart from it through a proxy, or in its process (self-reported)."""
        header = "" if re.search(rf"\b(from|import) {_MODULE}\b", tests) else _import_all()
        files = {f"test_{_MODULE}.py": header + tests, "run_pytest.py": PYTEST_RUNNER}
        solution = setup + "\n" + code
        if self._isolation == "apart":
            argv = ["run_pytest.py", "{channel}", "{peer}", *_PYTEST, f"test_{_MODULE}.py"]
            result = await run_apart(self._sandbox, solution, files, argv, self._files)
            return pytest_verdict(result, code, self._sandbox.limits)
        argv = ["run_pytest.py", "{channel}", "-", *_PYTEST, f"test_{_MODULE}.py"]
        files |= {**self._files, f"{_MODULE}.py": solution}
        result = await self._sandbox.run(files, argv, channel=True)
        verdict, keep = pytest_verdict(result, code, self._sandbox.limits)
        return dataclasses.replace(verdict, self_reported=True), keep


def _read_channel(text: str) -> tuple[dict[int, tuple[str, object]], dict[str, str]]:
    """The harness's lines: each remote value (or its error) by index, and stage errors."""
    sent: dict[int, tuple[str, object]] = {}
    stages: dict[str, str] = {}
    for item in channel_items(text):
        if isinstance(item.get("stage"), str):
            stages[item["stage"]] = str(item.get("error", ""))[:400]
        elif isinstance(item.get("i"), int):
            if "error" in item:
                sent[item["i"]] = ("error", str(item["error"])[:400])
            elif "value" in item:
                sent[item["i"]] = ("value", item["value"])
    return sent, stages


def _judge_check(
    check: Check, sent: list[tuple[str, object] | None], result: SandboxResult
) -> str | None:
    """Why ``check`` fails, on the trusted side, or ``None`` when it holds."""
    values = []
    for item in sent:
        if item is None:
            code = result.returncode
            return f"the code ended the process before this could be checked (exit {code})"
        kind, payload = item
        if kind == "error":
            return str(payload)
        try:
            values.append(decode(payload))
        except Unplain as exc:
            return f"the code returned {exc}"
    try:
        if check.holds(values):
            return None
        return check.explain(values)
    except Exception as exc:  # noqa: BLE001  # a comparison that raises is a failed assert
        return f"{type(exc).__name__}: {exc}"[:400]


def _import_all() -> str:
    return f"from {_MODULE} import *  # noqa: F403\n"


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
    isolated_only: bool = False,
    isolation: Isolation = "apart",
) -> _PassesTests:
    """Pass when the code in the output passes ``tests`` in the sandbox; the result is the code.

    ``tests`` is pytest code (a string, or a ``Path`` to a file), a list of assert snippets, or
    ``None`` to take each task's own tests. ``files`` are data files the tests read, written
    beside them. ``limits`` bounds time, memory, files and processes. ``missing`` says what a
    task without tests gets: a ``"fault"`` or a plain ``"fail"``. ``cache`` keeps verdicts.
    ``isolated_only`` rejects answers whose tests cannot be judged apart from the code (see the
    module docstring) instead of passing them with a ``self_reported`` verdict. ``isolation``
    says where a pytest file's tests run: ``"apart"`` from the code, which they reach through a
    proxy module with plain data only, or ``"in-process"`` (self-reported) for tests that need
    the code's own objects.
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
        reserved = ("run.py", "cases.json", "run_pytest.py", "serve.py", "solution.py")
        if not _PLAIN_NAME.fullmatch(name) or name in reserved or name.startswith("_cascade"):
            raise ConfigError(f"test files must have plain, unreserved names, got {name!r}")
    sandbox = sandbox or Sandbox(limits)
    return _PassesTests(
        chosen, setup, files or {}, sandbox, max_chars, missing, cache, isolated_only, isolation
    )

"""Validator speed, side by side with a baseline in one run.

- ``json_schema`` and ``pydantic_model``: validations/s on parsed objects and from raw output,
  against the ``jsonschema`` package's Draft 2020-12 validator. Target: >= 300k/s parsed.
- ``mypy_clean``: seconds per warm check, against a cold ``mypy.api.run`` without a cache.
  Target: <= 50 ms.
- ``passes_tests``: seconds per right candidate, with the tests and the code in two sandboxes,
  against the tests and the code in one bare subprocess (the in-process harness for asserts,
  pytest for a file). Targets: <= 1.5x bare for asserts, <= 2x bare for a pytest file.

    .venv/bin/python benchmarks/validators.py [--objects 100000] [--checks 20] [--runs 20]
        [--pause-ms 200] [--only-sandbox]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import jsonschema
import pydantic

from cascade import Attempt, Task, Tier, Usage, Verdict, json_schema, mypy_clean, pydantic_model
from cascade.validators import Limits, Sandbox, Validator, passes_tests, run_validator
from cascade.validators.code_tests import _IN_PROCESS

SCHEMA = {
    "type": "object",
    "required": ["name", "email", "company"],
    "properties": {
        "name": {"type": "string"},
        "email": {"type": "string"},
        "company": {"type": ["string", "null"]},
        "phones": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


class Contact(pydantic.BaseModel):
    """The same shape as SCHEMA."""

    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    email: str
    company: str | None
    phones: list[str] = []


def attempt(output: str) -> Attempt:
    """An attempt answering ``output``."""
    task = Task("t", input="x")
    return Attempt(task, 0, Tier("m"), "m", "m", output, Usage(), 0.0, 0.0)


def rate(count: int, seconds: float) -> str:
    """A rate, readably."""
    return f"{count / seconds:12,.0f}/s"


class Checker(Protocol):
    """What both structured-output validators offer."""

    def check(self, value: object) -> Verdict:
        """Judge a parsed value."""
        ...

    def __call__(self, attempt: Attempt) -> Verdict:
        """Judge an attempt's raw output."""
        ...


def best_of(rounds: int, work: Callable[[], object]) -> float:
    """The fastest of ``rounds`` timings of ``work``: the least disturbed by the machine."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_schema(count: int) -> None:
    """Parsed-object and raw-output validation rates for both validators and the baseline."""
    objects = [
        {"name": f"Ada {i}", "email": f"ada{i}@x.org", "company": None, "phones": ["1"]}
        for i in range(count)
    ]
    texts = [json.dumps(o) for o in objects[: count // 10]]
    baseline = jsonschema.Draft202012Validator(SCHEMA)
    print(f"json_schema / pydantic_model: {count:,} parsed objects, {len(texts):,} raw outputs,")
    print("  best of 3 rounds each")
    base = best_of(3, lambda: all(baseline.is_valid(o) for o in objects))
    print(f"  baseline jsonschema.Draft202012Validator.is_valid {rate(count, base)}")
    validators: list[Checker] = [json_schema(SCHEMA), pydantic_model(Contact)]
    for validator in validators:

        def parsed_run(v: Checker = validator) -> bool:
            return all(v.check(o).passed for o in objects)

        def raw_run(v: Checker = validator) -> bool:
            return all(v(attempt(t)).passed for t in texts)

        assert parsed_run()
        parsed = best_of(3, parsed_run)
        raw = best_of(3, raw_run)
        print(
            f"  {validator!r:30} parsed {rate(count, parsed)} ({base / parsed:5.1f}x baseline)"
            f"   from raw output {rate(len(texts), raw)}"
        )


GOOD = "def add(a: int, b: int) -> int:\n    return a + b\n"
BAD = "def add(a: int, b: int) -> str:\n    return a + b\n"


def bench_mypy(checks: int) -> None:
    """Warm mypy_clean checks against a cold mypy run with no cache."""
    from mypy import api  # noqa: PLC0415  # timed apart from the other benchmarks

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "candidate.py"
        path.write_text(GOOD)
        config = Path(directory) / "mypy.ini"
        config.write_text("[mypy]\nstrict = True\n")
        start = time.perf_counter()
        api.run(["--config-file", str(config), "--cache-dir", "/dev/null", str(path)])
        cold = time.perf_counter() - start
    validator = mypy_clean()
    first_start = time.perf_counter()
    asyncio.run(run_validator(validator, attempt(GOOD)))
    first = time.perf_counter() - first_start
    times = []
    for i in range(checks):
        start = time.perf_counter()
        asyncio.run(run_validator(validator, attempt(GOOD if i % 2 else BAD)))
        times.append(time.perf_counter() - start)
    warm = statistics.median(times)
    print(f"mypy_clean: {checks} checks, alternating clean and failing code")
    print(f"  baseline mypy.api.run, no cache   {cold * 1000:7.1f} ms per check")
    print(f"  mypy_clean, first (fills cache)   {first * 1000:7.1f} ms")
    print(f"  mypy_clean, warm (median)         {warm * 1000:7.1f} ms  ({cold / warm:.0f}x faster)")


PYTEST_FILE = "def test_add():\n    assert add(2, 3) == 5\n    assert add(-1, 1) == 0\n"
PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "--noconftest", "test_solution.py"]
SNIPPETS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"]


class _Bare:
    """Our interpreter on the tests and the code together in one folder, unsandboxed."""

    def __init__(self, directory: str) -> None:
        cases = [["setup", ""], ["solution", GOOD]]
        cases += [[f"test {i}", s] for i, s in enumerate(SNIPPETS)]
        files = {"run.py": _IN_PROCESS, "cases.json": json.dumps(cases), "solution.py": GOOD}
        files["test_solution.py"] = "from solution import *\n" + PYTEST_FILE
        for name, text in files.items():
            Path(directory, name).write_text(text)
        self._directory = directory

    def run(self, argv: list[str]) -> float:
        """Seconds to run ``python -I -B ARGV`` there."""
        env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"}
        start = time.perf_counter()
        subprocess.run(  # our interpreter on our own files
            [sys.executable, "-I", "-B", *argv], cwd=self._directory, check=True,
            capture_output=True, env=env,
        )  # fmt: skip
        return time.perf_counter() - start


async def _judged(validator: Validator) -> float:
    start = time.perf_counter()
    verdict = await run_validator(validator, attempt(GOOD))
    assert verdict.passed, verdict.reason
    return time.perf_counter() - start


async def _sandboxed(sandbox: Sandbox, argv: list[str]) -> float:
    start = time.perf_counter()
    await sandbox.run({}, argv)
    return time.perf_counter() - start


async def _rounds(runs: int, bare: _Bare, pause_s: float) -> dict[str, list[float]]:
    """Every line once per round, in one event loop, as a run judges candidates."""
    times: dict[str, list[float]] = {}
    sandboxes = {
        "bwrap": Sandbox(Limits(), mode="bwrap"),
        "bwrap, none started ahead,": Sandbox(Limits(), mode="bwrap", warm=0),
        "unshare": Sandbox(Limits(), mode="unshare"),
    }
    for sandbox in sandboxes.values():
        await sandbox.run({}, ["-c", "pass"])  # the first run checks Python starts
    for _ in range(runs):
        times.setdefault("bare asserts", []).append(bare.run(["run.py", "M:"]))
        times.setdefault("bare pytest", []).append(bare.run(["-m", "pytest", *PYTEST_ARGS]))
        for mode, sandbox in sandboxes.items():
            await asyncio.sleep(pause_s)
            floor = await _sandboxed(sandbox, ["-c", "pass"])
            times.setdefault(f"{mode} one sandbox, python -c pass", []).append(floor)
            for form, tests in (("asserts", SNIPPETS), ("pytest", PYTEST_FILE)):
                await asyncio.sleep(pause_s)
                took = await _judged(passes_tests(tests, sandbox=sandbox))
                times.setdefault(f"{mode} passes_tests, {form}", []).append(took)
    for sandbox in sandboxes.values():
        sandbox.close()
    return times


def bench_sandbox(runs: int, pause_s: float) -> None:
    """passes_tests (tests and code in two sandboxes) beside one bare subprocess, interleaved.

    The bare subprocess runs the tests and the code together: the in-process harness for
    asserts, pytest with the code imported for a file. Each round runs every line once, so a
    machine loaded by others weighs on all of them alike. ``one sandbox, python -c pass`` is
    the floor under anything sandboxed. bubblewrap keeps sandboxes started ahead of use
    (``Sandbox(warm=2)``, the default), started once a run has ended: ``pause_s`` before each
    sandboxed line stands for the time a run spends elsewhere between candidates (the model's
    answer). The line with none started ahead, and ``unshare``, start each sandbox on demand.
    """
    with tempfile.TemporaryDirectory() as directory:
        times = asyncio.run(_rounds(runs, _Bare(directory), pause_s))
    mid = {name: statistics.median(values) for name, values in times.items()}
    print(f"passes_tests: {runs} interleaved rounds with a right candidate, {pause_s * 1000:g} ms")
    print("  between sandboxed lines, medians")
    for name, seconds in mid.items():
        base = mid["bare pytest" if name.endswith("pytest") else "bare asserts"]
        ratio = "" if name.startswith("bare") else f"  ({seconds / base:.2f}x bare)"
        print(f"  {name:50} {seconds * 1000:7.1f} ms{ratio}")


def main() -> None:
    """Run the three measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pause-ms", type=float, default=200.0)
    parser.add_argument("--only-sandbox", action="store_true")
    options = parser.parse_args()
    if not options.only_sandbox:
        bench_schema(options.objects)
        bench_mypy(options.checks)
    bench_sandbox(options.runs, options.pause_ms / 1000)


if __name__ == "__main__":
    main()

"""Wrong code that games its own test run is rejected; right code that is noisy still passes.

Each candidate below is a wrong ``add`` with one trick that made the old harness (the tests and
the verdict in the candidate's own process, read from its stdout) report a pass. The tests run
in a sandbox of their own: the candidate only computes values. Every test here failed on the
old code.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cascade.policy import load_policy
from cascade.testing import verdict_of
from cascade.types import Verdict
from cascade.validators import passes_tests
from cascade.validators.base import Validator
from cascade.validators.isolated import crossing_names
from cascade.validators.sandbox import Limits, Sandbox

SNIPPETS = ["assert add(2, 2) == 4", "assert (add(40, 2)) == (42)"]

TRICKS = {
    "eq-always-true": """
        class Anything:
            def __eq__(self, other):
                return True
        def add(a, b):
            return Anything()
        """,
    "int-subclass": """
        class Int(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def add(a, b):
            return Int(0)
        """,
    "frame-peek": """
        import sys
        def add(a, b):
            caller = sys._getframe(1)
            consts = [c for c in caller.f_code.co_consts if isinstance(c, int)]
            return max(consts + [0])
        """,
    "forged-line-then-exit": """
        import os, sys
        print(sys.argv[1] + '{"cases": 4, "failures": []}', flush=True)
        os._exit(0)
        """,
    "forged-line-at-exit": """
        import atexit, sys
        marker = sys.argv[1]
        atexit.register(lambda: print(marker + '{"cases": 4, "failures": []}'))
        def add(a, b):
            return 0
        """,
    "flood": """
        import sys
        def add(a, b):
            print("x" * 70_000)
            return 0
        print(sys.argv[1] + '{"cases": 4, "failures": []}')
        """,
    "patched-exec": """
        import builtins
        builtins.exec = lambda *args, **kwargs: None
        builtins.eval = lambda *args, **kwargs: 4
        def add(a, b):
            return 0
        """,
    "patched-json": """
        import json
        json.dumps = lambda *args, **kwargs: '{"cases": 4, "failures": []}'
        def add(a, b):
            return 0
        """,
    "patched-stdout": """
        import sys
        marker = sys.argv[1]
        class Liar:
            def write(self, text):
                if text.startswith(marker):
                    text = marker + '{"cases": 4, "failures": []}'
                return sys.__stdout__.write(text)
            def flush(self):
                sys.__stdout__.flush()
        sys.stdout = Liar()
        def add(a, b):
            return 0
        """,
    "patched-harness-list": """
        import __main__
        class Never(list):
            def append(self, item):
                pass
        __main__.failures = Never()
        def add(a, b):
            return 0
        """,
}


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    """One sandbox with the default limits (a right answer may print 15 MiB under them)."""
    return Sandbox(Limits(wall_s=20))


def judge(sandbox: Sandbox, candidate: str, tests: list[str] | str = SNIPPETS) -> Verdict:
    """The verdict of ``passes_tests`` on ``candidate``."""
    return verdict_of(passes_tests(tests, sandbox=sandbox), textwrap.dedent(candidate))


def test_only_the_functions_the_tests_call_cross() -> None:
    """The candidate serves ``add`` alone: the tests' 4 and 42 never reach it."""
    assert crossing_names(SNIPPETS, None) == ("add",)


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_a_wrong_answer_that_games_its_tests_is_rejected(sandbox: Sandbox, trick: str) -> None:
    """Each trick ends in a failure with a reason, never a pass."""
    verdict = judge(sandbox, TRICKS[trick])
    assert not verdict.passed, verdict
    assert verdict.reason
    assert not verdict.self_reported


def test_an_object_or_int_subclass_is_named_as_not_plain_data(sandbox: Sandbox) -> None:
    """What the code returned is said: it is not plain data."""
    for trick, kind in (("eq-always-true", "Anything"), ("int-subclass", "Int")):
        verdict = judge(sandbox, TRICKS[trick])
        assert f"an instance of solution.{kind}, not plain data" in verdict.reason


def test_a_right_answer_passes_and_says_what_it_got_when_wrong(sandbox: Sandbox) -> None:
    """The honest answer passes; a wrong one is told the value and what was expected."""
    assert judge(sandbox, "def add(a, b):\n    return a + b\n").passed
    wrong = judge(sandbox, "def add(a, b):\n    return a - b\n")
    assert "got 0, expected 4" in wrong.reason


def test_a_right_answer_that_prints_15_mib_passes(sandbox: Sandbox) -> None:
    """Output is kept for the record only: a flood changes no verdict either way."""
    noisy = """
        def add(a, b):
            print("y" * (15 << 19))
            return a + b
        """
    assert judge(sandbox, noisy).passed


def test_os_exit_on_import_under_pytest_fails(sandbox: Sandbox) -> None:
    """An exit code 0 from pytest is not a pass when no test reported one."""
    tests = "def test_add():\n    assert add(2, 2) == 4\n"
    verdict = judge(sandbox, "import os\nos._exit(0)\n", tests)
    assert not verdict.passed
    assert "the code under test ended the process" in verdict.reason
    in_process = passes_tests(tests, sandbox=sandbox, isolation="in-process", isolated_only=False)
    verdict = verdict_of(in_process, "import os\nos._exit(0)\n")
    assert not verdict.passed
    assert "without reporting" in verdict.reason
    honest = judge(sandbox, "def add(a, b):\n    return a + b\n", tests)
    assert honest.passed
    assert not honest.self_reported  # the tests ran apart from the code
    assert verdict_of(in_process, "def add(a, b):\n    return a + b\n").self_reported


def test_any_snippet_runs_apart_and_in_process_is_an_opt_in(sandbox: Sandbox) -> None:
    """A loop of asserts runs apart like any other; in-process passes are refused by default."""
    loop = ["for a in range(3):\n    assert add(a, a) == 2 * a"]
    verdict = judge(sandbox, "def add(a, b):\n    return a + b\n", loop)
    assert verdict.passed
    assert not verdict.self_reported
    in_process = passes_tests(loop, sandbox=sandbox, isolation="in-process")
    refused = verdict_of(in_process, "def add(a, b):\n    return a + b\n")
    assert not refused.passed
    assert refused.self_reported
    assert "isolated_tests_only" in refused.reason
    allowed = passes_tests(loop, sandbox=sandbox, isolation="in-process", isolated_only=False)
    accepted = verdict_of(allowed, "def add(a, b):\n    return a + b\n")
    assert accepted.passed
    assert accepted.self_reported


@pytest.mark.parametrize(
    ("snippet", "right", "wrong"),
    [
        ("assert math.isclose(area(2.0), 12.566, rel_tol=1e-3)", "3.14159 * r * r", "r"),
        ("assert abs(area(1.0) - 3.14159) < 1e-4", "3.14159 * r * r", "3.0 * r"),
        ("assert sorted(area(1.0)) == [1, 2]", "[2, 1]", "[3]"),
        ("assert area(0) is None", "None", "0"),
        ("assert not area(0)", "False", "True"),
        ("assert area(1) in (1, 2)", "2", "3"),
    ],
)
def test_other_assert_forms(sandbox: Sandbox, snippet: str, right: str, wrong: str) -> None:
    """isclose, abs(...) < eps, sorted, is None, not, in: judged apart from the code."""
    for body, passes in ((right, True), (wrong, False)):
        verdict = judge(sandbox, f"import math\ndef area(r):\n    return {body}\n", [snippet])
        assert verdict.passed is passes, verdict
        assert not verdict.self_reported


def test_the_code_gets_nothing_it_did_not_import(sandbox: Sandbox) -> None:
    """A solution that uses math without importing it fails, as it would anywhere else."""
    code = "def add(a, b):\n    return int(math.fsum([a, b]))\n"
    verdict = judge(sandbox, code)
    assert not verdict.passed
    assert "NameError" in verdict.reason
    assert judge(sandbox, "import math\n" + code).passed


PYTEST_FILE = """
import pytest

def test_add():
    assert add(2, 2) == 4
    assert add(40, 2) == 42

def test_bad_input():
    with pytest.raises(TypeError):
        add("a", 1)
"""


@pytest.mark.parametrize(
    ("trick", "code"),
    [
        ("reads the test file", """
            import re
            _answers = None
            def add(a, b):
                global _answers
                if _answers is None:
                    text = open("test_solution.py").read()
                    _answers = iter(int(x) for x in re.findall(r"== (\\d+)", text))
                return next(_answers)
            """),
        ("always-equal object", TRICKS["eq-always-true"]),
        ("int subclass", TRICKS["int-subclass"]),
    ],
)  # fmt: skip
def test_pytest_files_run_apart_from_the_code(sandbox: Sandbox, trick: str, code: str) -> None:
    """The tests never share a process or a folder with the code: its tricks reach nothing."""
    tests = "def test_add():\n    assert add(2, 2) == 4\n    assert add(40, 2) == 42\n"
    verdict = judge(sandbox, code, tests)
    assert not verdict.passed, trick
    assert not verdict.self_reported


def test_pytest_files_reach_the_code_through_plain_data(sandbox: Sandbox) -> None:
    """Calls and builtin exceptions cross the proxy as in one process; module values do not."""
    code = """
        LIMIT = 100
        def add(a, b):
            if not isinstance(a, int):
                raise TypeError("numbers only")
            return a + b
        """
    verdict = judge(sandbox, code, PYTEST_FILE)
    assert verdict.passed, verdict.reason
    assert not verdict.self_reported
    tests = PYTEST_FILE + "\ndef test_limit():\n    assert LIMIT == 100\n"
    verdict = judge(sandbox, code, tests)
    assert not verdict.passed
    assert "NameError" in verdict.reason


def test_numpy_numbers_travel_as_the_builtin_values_they_hold(sandbox: Sandbox) -> None:
    """A numpy float compares as the float it is; a subclass of float still does not pass."""
    pytest.importorskip("numpy")
    code = "import numpy\ndef add(a, b):\n    return numpy.float64(a + b)\n"
    assert judge(sandbox, code).passed
    sneaky = "class F(float):\n    def __eq__(self, other):\n        return True\n"
    assert not judge(sandbox, sneaky + "def add(a, b):\n    return F(0)\n").passed


def test_a_policys_in_process_tests_refuse_self_reported_passes_by_default(
    tmp_path: Path,
) -> None:
    """A policy's tests run in-process: a pass is refused unless isolated_tests_only = false."""
    body = 'task_type = "code"\n[[tiers]]\nmodel = "m"\n[[validators]]\nkind = "tests"\n'
    body += 'snippets = ["assert add(1, 2) == 3"]\nisolation = "in-process"\n'
    (tmp_path / "default.toml").write_text(body)
    (tmp_path / "allowed.toml").write_text(body + "isolated_tests_only = false\n")
    code = "def add(a, b):\n    return a + b\n"
    refused = verdict_of(_policy_validator(tmp_path / "default.toml"), code)
    assert not refused.passed
    assert refused.self_reported
    assert "isolated_tests_only" in refused.reason
    allowed = verdict_of(_policy_validator(tmp_path / "allowed.toml"), code)
    assert allowed.passed
    assert allowed.self_reported


def _policy_validator(path: Path) -> Validator:
    validate = load_policy(path).plan.validate
    assert callable(validate)  # one validators table: one validator
    return validate

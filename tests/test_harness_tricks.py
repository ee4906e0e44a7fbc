"""Hostile answers that gamed the second-round harness, and right answers it could not pass.

Every wrong answer here is rejected with a reason (never passed, never a validator fault), and
every right answer passes, with the tests run apart from the code. Each of these failed on the
harness that split asserts with ``ast`` and lent the code the tests' names.
"""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest

from cascade.testing import attempt_with, verdict_of
from cascade.types import Verdict
from cascade.validators import passes_tests
from cascade.validators.sandbox import Limits, Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    """One sandbox with room for a loaded machine."""
    return Sandbox(Limits(wall_s=20))


def judge(sandbox: Sandbox, code: str, tests: list[str] | str, setup: str = "") -> Verdict:
    """The verdict of ``passes_tests`` (with its defaults) on ``code``."""
    validator = passes_tests(tests, setup=setup, sandbox=sandbox)
    return verdict_of(validator, textwrap.dedent(code))


WRONG = {
    "str subclass that says yes to startswith": (
        """
        class Yes(str):
            def startswith(self, *args):
                return True
        def handle(name):
            return Yes("nobody")
        """,
        ['assert handle("ann").startswith("user-")'],
        "",
    ),
    "rebinds isclose from the setup": (
        """
        def isclose(*args, **kwargs):
            return True
        def area(r):
            return 0.0
        """,
        ["assert isclose(area(1.0), 3.14159, rel_tol=1e-3)"],
        "from math import isclose",
    ),
    "rebinds Counter from the setup": (
        """
        def Counter(items):
            return {}
        def tally(text):
            return {}
        """,
        ['assert tally("aab") == dict(Counter("aab"))'],
        "from collections import Counter",
    ),
    "patches Counter in collections": (
        """
        import collections
        collections.Counter = lambda items: {}
        def tally(text):
            return {}
        """,
        ['assert tally("aab") == dict(collections.Counter("aab"))'],
        "import collections",
    ),
    "patches numpy.allclose": (
        """
        import numpy
        numpy.allclose = lambda *args, **kwargs: True
        def spread(n):
            return [0.0] * n
        """,
        ["assert np.allclose(spread(2), [0.5, 1.5])"],
        "import numpy as np",
    ),
    "all() over a generator, with all patched": (
        """
        import builtins
        builtins.all = lambda items: True
        def add(a, b):
            return 0
        """,
        ["assert all(add(i, i) == 2 * i for i in range(1, 5))"],
        "",
    ),
    "(99 or 0) == 1": ("def pick():\n    return 99\n", ["assert (pick() or 0) == 1"], ""),
    "a ** entry in the expected dict": (
        'def merge():\n    return {"b": 2}\n',
        ['assert merge() == {**{"a": 1}, "b": 2}'],
        "",
    ),
    "an OrderedDict in the wrong order": (
        """
        from collections import OrderedDict
        def order():
            return OrderedDict([("b", 2), ("a", 1)])
        """,
        ['assert order() == OrderedDict([("a", 1), ("b", 2)])'],
        "from collections import OrderedDict",
    ),
    "a module-level abs": (
        "def abs(x):\n    return 0\ndef area(r):\n    return 1.0\n",
        ["assert abs(area(1.0) - 3.14159) < 1e-3"],
        "",
    ),
}


@pytest.mark.parametrize("trick", sorted(WRONG))
def test_a_wrong_answer_is_rejected(sandbox: Sandbox, trick: str) -> None:
    """Each trick ends in a rejection with a reason, judged apart from the code."""
    code, snippets, setup = WRONG[trick]
    verdict = judge(sandbox, code, snippets, setup)
    assert not verdict.passed, verdict
    assert not verdict.fault
    assert not verdict.self_reported
    assert verdict.reason


PYTEST_WRONG = {
    "pytest_plugins naming the solution": (
        """
        pytest_plugins = ["solution"]
        def pytest_pyfunc_call(pyfuncitem=None):
            return True
        def add(a, b):
            return 0
        """,
        "def test_add():\n    assert add(2, 2) == 4\n",
    ),
    "a module-level abs": (
        "def abs(x):\n    return 0\ndef add(a, b):\n    return 0.5\n",
        "def test_add():\n    assert abs(add(1, 1) - 2) < 1e-9\n",
    ),
    "a module-level set": (
        "def set(items):\n    return frozenset({2})\ndef add(a, b):\n    return a * b\n",
        "def test_add():\n    assert set([add(1, 1), add(2, 0)]) == {2}\n",
    ),
    "a module-level isclose": (
        "def isclose(*args, **kwargs):\n    return True\ndef add(a, b):\n    return 0.5\n",
        "from math import isclose\nfrom solution import *\n\n"
        "def test_add():\n    assert isclose(add(2, 2), 4)\n",
    ),
}
PYTEST_TESTS = "def test_add():\n    assert add(2, 2) == 4\n"


@pytest.mark.parametrize("trick", sorted(PYTEST_WRONG))
def test_a_wrong_answer_under_pytest_is_rejected(sandbox: Sandbox, trick: str) -> None:
    """The star import hands the tests the answer's functions alone: no plugins, no builtins."""
    code, tests = PYTEST_WRONG[trick]
    verdict = judge(sandbox, code, tests)
    assert not verdict.passed, verdict
    assert not verdict.fault


FORGED_HELLO = """
    import os, sys
    os.write(int(sys.argv[1]), b'{"calls": [], "values": {"__test__": {"b": false}}}\\n')
    def add(a, b):
        return 0
    """


@pytest.mark.parametrize(
    "tests", [PYTEST_TESTS, ["assert add(2, 2) == 4"]], ids=["pytest", "asserts"]
)
def test_a_forged_first_line_on_the_socket_is_a_rejection(
    sandbox: Sandbox, tests: str | list[str]
) -> None:
    """A greeting the answer forges is its own failure, not a fault that stops the task."""
    verdict = judge(sandbox, FORGED_HELLO, tests)
    assert not verdict.passed
    assert not verdict.fault
    assert "greeting" in verdict.reason


GREETING_NAMING_ABS = """
    import __main__
    _real = __main__._send
    def _send(item):
        if "calls" in item:
            item = {"calls": [*item["calls"], "abs"], "modules": {}}
        _real(item)
    __main__._send = _send
    def abs(x):
        return 0
    def area(r):
        return 1.0
    """


def test_a_greeting_that_offers_a_name_the_tests_did_not_ask_for_is_a_rejection(
    sandbox: Sandbox,
) -> None:
    """The answer's side names only functions the tests may call: ``abs`` is never one."""
    verdict = judge(sandbox, GREETING_NAMING_ABS, ["assert abs(area(1.0) - 3.14159) < 1e-3"])
    assert not verdict.passed
    assert not verdict.fault
    assert "greeting" in verdict.reason


@pytest.mark.parametrize(
    ("code", "passes"),
    [
        ("import math\ndef area(r):\n    return math.pi * r * r\n", True),
        ("import pytest as math\ndef area(r):\n    return 1.0\n", False),
    ],
    ids=["stdlib-module", "other-module"],
)
def test_a_module_the_tests_reach_through_the_answer_is_imported_again(
    sandbox: Sandbox, code: str, passes: bool
) -> None:
    """Tests that use the answer's ``import math`` get the standard library's, and nothing else."""
    tests = ["assert math.isclose(area(1.0), math.pi)", "assert math.approx(area(1.0)) == 1.0"]
    verdict = judge(sandbox, code, tests[:1] if passes else tests[1:])
    assert verdict.passed is passes, verdict.reason


FORGED_VALUES = {
    "an int over 4,300 digits": """b'{"i": 0, "value": {"i": "' + b"1" * 5000 + b'"}}'""",
    "a float that is not one": """b'{"i": 0, "value": {"f": "abc"}}'""",
    "nesting 100,000 deep": """b'{"i": 0, "value": ' + b"[" * 100_000""",
}
"""Lines in the old channel's format, as Python expressions: the new side reads them too."""


@pytest.mark.parametrize("name", sorted(FORGED_VALUES))
def test_a_value_that_cannot_be_decoded_is_a_rejection(sandbox: Sandbox, name: str) -> None:
    """Whatever the answer writes back in place of a value fails the answer, never the validator."""
    code = f"""
        import os, sys
        def big(n):
            os.write(int(sys.argv[1]), {FORGED_VALUES[name]} + bytes([10]))
            os._exit(0)
        """
    verdict = judge(sandbox, code, ["assert big(3) == 7"])
    assert not verdict.passed, name
    assert not verdict.fault, verdict.reason


COLLIDING_SET = """
    import os, sys
    ints = [i * (2 ** 61 - 1) for i in range(30_000)]
    new = '{"value": ["s", ' + ", ".join(f'["i", "{hex(i)}"]' for i in ints) + ']}'
    old = '{"i": 0, "value": {"set": [' + ", ".join(f'{{"i": "{i}"}}' for i in ints) + ']}}'
    def same_hash():
        os.write(int(sys.argv[1]), (new + "\\n" + old + "\\n").encode())
        os._exit(0)
    """


def test_a_set_of_ints_with_one_hash_is_refused_in_bounded_time(sandbox: Sandbox) -> None:
    """Rebuilding such a set stops at its time bound, in the tests' sandbox, never the host's."""
    honest = passes_tests(["assert add(2, 2) == 4"], sandbox=sandbox)
    hostile = passes_tests(["assert same_hash() == {0}"], sandbox=sandbox)

    async def both() -> tuple[Verdict, Verdict, float]:
        slow = asyncio.ensure_future(hostile(attempt_with(textwrap.dedent(COLLIDING_SET))))
        await asyncio.sleep(0.5)
        start = time.perf_counter()
        fast = await honest(attempt_with("def add(a, b):\n    return a + b\n"))
        took = time.perf_counter() - start
        return await slow, fast, took

    slow, fast, took = asyncio.run(both())
    assert not slow.passed
    assert not slow.fault
    assert "too long to rebuild" in slow.reason
    assert fast.passed, fast.reason
    assert took < 5, "a right answer beside it waited on the decoding"


RIGHT = {
    "a generator consumed by list and sum": (
        "def count(n):\n    yield from range(n)\n",
        ["assert list(count(3)) == [0, 1, 2]", "assert sum(count(4)) == 6"],
    ),
    "map in the test": (
        "def double(x):\n    return 2 * x\n",
        ["assert list(map(double, [1, 2])) == [2, 4]"],
    ),
    "a re.Match as a truth value": (
        "import re\ndef find(text):\n    return re.search(r'(\\d+)', text)\n",
        ['assert find("ab12")', 'assert not find("ab")', 'assert find("a7").group(1) == "7"'],
    ),
    "a namedtuple": (
        "from collections import namedtuple\nP = namedtuple('P', 'x y')\n"
        "def point():\n    return P(1, 2)\n",
        ["assert point() == (1, 2)"],
    ),
    "factorial(2000) modulo a prime": (
        "import math\ndef fact(n):\n    return math.factorial(n)\n",
        [f"assert fact(2000) % 1000003 == {__import__('math').factorial(2000) % 1000003}",
         "assert len(str(fact(2000))) == 5736"],
    ),
    "a list over 16 MB on the wire": (
        "def many():\n    return list(range(10 ** 6, 4 * 10 ** 6))\n",
        ["assert len(many()) == 3 * 10 ** 6"],
    ),
    "an int over 4,300 digits": (
        "def big():\n    return 10 ** 5000\n",
        ["assert big() == 10 ** 5000"],
    ),
    "(... or 0) == 3": ("def pick():\n    return 3\n", ["assert (pick() or 0) == 3"]),
    "an OrderedDict in the right order": (
        "from collections import OrderedDict\n"
        "def order():\n    return OrderedDict([('a', 1), ('b', 2)])\n",
        ["from collections import OrderedDict\n"
         "assert order() == OrderedDict([('a', 1), ('b', 2)])"],
    ),
    "a dict with ** in the expectation": (
        "def merge():\n    return {'a': 1, 'b': 2}\n",
        ["assert merge() == {**{'a': 1}, 'b': 2}"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(RIGHT))
def test_a_right_answer_passes(sandbox: Sandbox, case: str) -> None:
    """Right answers that the plain-data rule or the trusted evaluator used to refuse pass."""
    code, snippets = RIGHT[case]
    verdict = judge(sandbox, code, snippets)
    assert verdict.passed, verdict.reason
    assert not verdict.self_reported


def test_a_pytest_file_starting_with_a_future_import_passes(sandbox: Sandbox) -> None:
    """The implicit import of the solution goes after the file's ``__future__`` imports."""
    tests = '"""Tests."""\nfrom __future__ import annotations\n\n'
    tests += "def test_add():\n    assert add(2, 2) == 4\n"
    assert judge(sandbox, "def add(a, b):\n    return a + b\n", tests).passed
    assert not judge(sandbox, "def add(a, b):\n    return a - b\n", tests).passed

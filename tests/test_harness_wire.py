"""The apart harness piece by piece.

The wire's bounds, the names that cross, the implicit import of a pytest file, and which
verdicts are kept.
"""

from __future__ import annotations

import collections
import json
import re
import time

import pytest

from cascade.validators import wire
from cascade.validators.isolated import crossing_names
from cascade.validators.pytest_runner import with_import
from cascade.validators.run_verdicts import pytest_verdict, snippets_verdict
from cascade.validators.sandbox import Limits, SandboxResult

Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -(2**53), 2**5000, 1.5, float("inf"), 1 + 2j, "ü", b"\x00\xff",
        [1, [2]], (1, (2,)), {1, 2}, frozenset({3}), {"a": {"b": [1]}},
        collections.OrderedDict([(2, 1), (1, 2)]), collections.Counter("aab"),
    ],
)  # fmt: skip
def test_plain_values_cross_as_they_are(value: object) -> None:
    """Each plain value comes back equal and of its exact type."""
    back = wire.decode(wire.loads(json.dumps(wire.encode(value))))
    assert back == value
    assert type(back) is type(value)


def test_an_ordered_dict_keeps_its_order() -> None:
    """An OrderedDict in another order is another value."""
    sent = collections.OrderedDict([("b", 2), ("a", 1)])
    assert wire.decode(wire.encode(sent)) != collections.OrderedDict([("a", 1), ("b", 2)])


def test_values_of_other_kinds_cross_as_the_plain_values_they_stand_for() -> None:
    """A namedtuple is a tuple, a defaultdict a dict, a generator an iterator, a match a match."""
    assert type(wire.decode(wire.encode(Point(1, 2)))) is tuple
    assert type(wire.decode(wire.encode(collections.defaultdict(int, a=1)))) is dict
    assert list(wire.decode(wire.encode(x * x for x in range(3)))) == [0, 1, 4]
    match = wire.decode(wire.encode(re.search(r"(?P<n>\d+)", "ab12")))
    assert match
    assert (match.group(), match["n"], match.span(), match.groups()) == (
        "12",
        "12",
        (2, 4),
        ("12",),
    )


class Yes(str):
    """A str that always says yes."""

    def startswith(self, *args: object) -> bool:
        """Always true."""
        return True


@pytest.mark.parametrize("value", [Yes("x"), object(), [1, Yes("y")], type("I", (int,), {})(1)])
def test_anything_else_is_refused(value: object) -> None:
    """A subclass of a builtin, or any other object, is not plain data."""
    with pytest.raises(wire.Unplain, match="not plain data"):
        wire.encode(value)


def test_an_endless_generator_stops_at_the_item_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer's side never materialises more than the bound."""
    monkeypatch.setattr(wire, "MAX_ITEMS", 1000)

    def endless() -> collections.abc.Iterator[int]:
        while True:
            yield 1

    with pytest.raises(wire.Unplain, match="more than 1,000 items"):
        wire.encode(endless())


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (["i", "zz"], "cannot be rebuilt"),
        (["c", "x", 1], "malformed"),
        ({"f": "abc"}, "malformed"),
        (["s", ["l"]], "cannot be rebuilt"),
        (["d", 1], "malformed mapping"),
        (["nope"], "malformed"),
        ([], "malformed"),
    ],
)
def test_malformed_data_is_unplain(data: object, why: str) -> None:
    """Whatever arrives, decoding ends in Unplain with a reason, never another exception."""
    with pytest.raises(wire.Unplain, match=why):
        wire.decode(data)


def test_lines_past_the_bounds_are_unplain() -> None:
    """A line too deep or too long to parse, or nested past the depth bound, is refused."""
    with pytest.raises(wire.Unplain, match="not JSON"):
        wire.loads("[" * 100_000)
    with pytest.raises(wire.Unplain, match="over 64 MiB"):
        wire.loads(b" " * (wire.MAX_LINE_BYTES + 1))
    nested: list[object] = ["l"]
    for _ in range(wire.MAX_DEPTH + 1):
        nested = ["l", nested]
    with pytest.raises(wire.Unplain, match="malformed"):
        wire.decode(nested)


def test_a_set_whose_items_share_one_hash_is_refused_within_its_time() -> None:
    """Rebuilding stops at its deadline instead of taking seconds per thousand items."""
    data = ["s", *(["i", hex(i * (2**61 - 1))] for i in range(1, 30_000))]
    start = time.perf_counter()
    with pytest.raises(wire.Unplain, match="too long to rebuild"):
        wire.decode(data, seconds=0.2)
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize(
    ("sources", "names"),
    [
        (["assert add(1, 2) == 3"], ("add",)),
        (["assert abs(area(1)) < 2", "assert set(f()) == {1}"], ("area", "f")),
        (["from math import isclose\nassert isclose(f(1), 2)"], ("f",)),
        (["import numpy as np\nassert np.all(g())"], ("g",)),
        (["def check(candidate):\n    assert candidate(1)\ncheck(inc)"], ("inc",)),
        (["from solution import add\nassert add(1, 1) == 2"], ("add",)),
        (["import solution\nassert solution.add(1, 1) == 2"], ("add",)),
        (["x = 1\nassert x == 1"], ()),
    ],
)
def test_the_names_that_cross(sources: list[str], names: tuple[str, ...]) -> None:
    """Names the tests read and never bind, builtins aside, may be the answer's functions."""
    assert crossing_names(sources, None) == names


def test_the_entry_point_always_crosses_first() -> None:
    """The task's entry point is served even when the tests name it only through a helper."""
    assert crossing_names(["check(candidate=f)"], "sort") == ("sort", "check", "f")


@pytest.mark.parametrize(
    ("tests", "first"),
    [
        ("def test_a():\n    pass\n", 0),
        ("from __future__ import annotations\ndef test_a():\n    pass\n", 1),
        ('"""Doc."""\n\nfrom __future__ import annotations\nx = 1\n', 3),
    ],
)
def test_the_implicit_import_follows_future_imports(tests: str, first: int) -> None:
    """``from solution import *`` goes where Python allows it: after ``__future__`` imports."""
    lines = with_import(tests, "solution").splitlines()
    assert lines[first] == "from solution import *  # noqa: F403"
    compile("\n".join(lines), "test_solution.py", "exec")
    assert with_import("import solution\n", "solution") == "import solution\n"


LIMITS = Limits(wall_s=2)
DONE = '{"stage": "loaded"}\n{"i": 0, "ok": true}\n{"stage": "done"}\n'


@pytest.mark.parametrize(
    ("channel", "passed", "kept"),
    [(DONE, True, False), ('{"stage": "loaded"}\n', False, True), ("", False, True)],
    ids=["tests-reported-their-end", "cut-off-mid-run", "nothing-reported"],
)
def test_a_timeout_whose_tests_had_ended_is_judged_and_never_kept(
    channel: str, passed: bool, kept: bool
) -> None:
    """A run flagged at the deadline after its tests reported their end is read, not cached."""
    result = SandboxResult(137, "", "", True, 2.5, channel)
    verdict, keep = snippets_verdict(result, 1, "code", LIMITS)
    assert (verdict.passed, keep) == (passed, kept)
    if not passed:
        assert "wall-clock limit" in verdict.reason


def test_a_pytest_timeout_whose_session_had_ended_is_never_kept() -> None:
    """The same for pytest: a session that reported its end was not cut off by the clock."""
    report = '{"collected": 1}\n{"when": "call", "outcome": "passed"}\n{"finished": 0}\n'
    verdict, keep = pytest_verdict(SandboxResult(137, "", "", True, 2.5, report), "c", LIMITS)
    assert verdict.passed
    assert not keep
    verdict, keep = pytest_verdict(SandboxResult(137, "", "", True, 2.5, ""), "c", LIMITS)
    assert not verdict.passed
    assert keep


def test_a_run_that_did_not_report_every_snippet_fails() -> None:
    """A missing outcome is a failure, even with an exit code of 0."""
    result = SandboxResult(0, "", "", False, 0.1, '{"stage": "loaded"}\n{"stage": "done"}\n')
    verdict, keep = snippets_verdict(result, 1, "code", LIMITS)
    assert not verdict.passed
    assert keep

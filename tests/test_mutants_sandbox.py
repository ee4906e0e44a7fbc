"""Behaviour tests that kill the sandbox validators' surviving mutants (issue 34).

Each test checks what a user of ``passes_tests`` (or of the sandbox's pieces) sees: which of the
answer's names the tests may reach, what a failed comparison says, that a chained comparison is
judged whole, and so on. ``tests/mutation_survivors.md`` lists the mutants that no test can tell
apart from the original, with the reason.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import json
import locale
import os
import re
import secrets
import shutil
import socket
import struct
import tempfile
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from cascade.errors import ConfigError
from cascade.store.verdicts import VerdictCache
from cascade.testing import verdict_of
from cascade.types import Verdict
from cascade.validators import passes_tests, wire
from cascade.validators.confine import Cgroup, describe, processes_of, seccomp_filter, write_etc
from cascade.validators.isolated import crossing_names
from cascade.validators.sandbox import Limits, Sandbox, SandboxResult


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    """One sandbox with room for a loaded machine."""
    return Sandbox(Limits(wall_s=20))


def judge(sandbox: Sandbox, code: str, tests: list[str] | str, setup: str = "") -> Verdict:
    """The verdict of ``passes_tests`` (with its defaults) on ``code``."""
    validator = passes_tests(tests, setup=setup, sandbox=sandbox)
    return verdict_of(validator, textwrap.dedent(code))


# --- isolated.py: the names that cross, and asserts that explain themselves ---------------------


@pytest.mark.parametrize(
    ("sources", "names"),
    [
        # ``from solution import *`` names no function called "*".
        (["from solution import *\nassert f(1) == 2"], ("f",)),
        # ``import os.path`` binds ``os``: the answer's ``os`` never replaces it.
        (["import os.path\nassert os.path.join(f(), 'a')"], ("f",)),
        # The name an ``except`` binds is the tests' own.
        (["try:\n    f()\nexcept ValueError as err:\n    assert 'x' in str(err)"], ("f",)),
        # A name declared global is the tests' own, even if only read.
        (["def t():\n    global seen\n    return seen + f()"], ("f",)),
        # What the setup binds stays the tests' own in every later snippet.
        (["from math import isclose", "assert isclose(f(1), 2)"], ("f",)),
        # Names read in every source cross, not only in the last.
        (["assert f(1) == 1", "assert g(2) == 2"], ("f", "g")),
        # A snippet that does not parse does not hide the names of those after it.
        (["assert (", "assert f(1) == 1"], ("f",)),
    ],
)
def test_the_names_that_cross_after_each_kind_of_binding(
    sources: list[str], names: tuple[str, ...]
) -> None:
    """Only names the tests read and never bind themselves may be the answer's functions."""
    assert crossing_names(sources, None) == names


@pytest.mark.parametrize(
    ("snippet", "said"),
    [
        ("assert f(1) == 4", "got 5, expected 4"),
        ("assert f(1) < 3", "got 5, expected < 3"),
        ("assert f(1) in (1, 2)", "got 5, expected in (1, 2)"),
        ("assert f(1) not in (5, 6)", "got 5, expected not in (5, 6)"),
        ("assert f(1) is None", "got 5, expected None"),
    ],
)
def test_a_failed_comparison_says_what_it_got_and_what_was_expected(
    sandbox: Sandbox, snippet: str, said: str
) -> None:
    """Each comparison operator's failure names the value got and the expectation, with its op."""
    verdict = judge(sandbox, "def f(x):\n    return 5\n", [snippet])
    assert not verdict.passed
    assert said in verdict.reason, verdict.reason


def test_a_chained_comparison_is_judged_whole(sandbox: Sandbox) -> None:
    """``1 < f() < 3`` fails when only its first half holds, and passes when both do."""
    chained = ["assert 1 < f(0) < 3", "assert f(0) != 0"]
    assert not judge(sandbox, "def f(x):\n    return 5\n", chained).passed
    assert judge(sandbox, "def f(x):\n    return 2\n", chained).passed


def test_a_bare_assert_and_a_membership_test_pass_when_right(sandbox: Sandbox) -> None:
    """Asserts that are not one comparison, and ``not in``, run as written."""
    snippets = ["assert f(0)", "assert not f(1) == 0", "assert f(2) not in (0, 1)", "x = f(3)"]
    verdict = judge(sandbox, "def f(x):\n    return 7\n", snippets)
    assert verdict.passed, verdict.reason


# --- code_tests.py: where the tests come from, files beside them, the cache ---------------------


def test_a_tasks_own_visible_tests_run_with_its_setup(sandbox: Sandbox) -> None:
    """With no tests given, the task's ``visible_tests`` run after its ``test_setup``."""
    validator = passes_tests(sandbox=sandbox)
    fields: dict[str, Any] = {
        "visible_tests": ["assert add(2, 2) == four"],
        "test_setup": "four = 4",
    }
    right = verdict_of(validator, "def add(a, b):\n    return a + b\n", **fields)
    assert right.passed, right.reason
    wrong = verdict_of(validator, "def add(a, b):\n    return a * b + 1\n", **fields)
    assert not wrong.passed
    assert "got 5, expected 4" in wrong.reason


def test_a_tasks_setup_is_run_before_its_pytest_file_too(sandbox: Sandbox) -> None:
    """``test_setup`` comes first on the code's side with a pytest file as with snippets."""
    validator = passes_tests(sandbox=sandbox)
    fields: dict[str, Any] = {
        "tests": "def test_floor():\n    assert down(2.5) == 2\n",
        "test_setup": "import math",
    }
    verdict = verdict_of(validator, "def down(x):\n    return math.floor(x)\n", **fields)
    assert verdict.passed, verdict.reason


def test_a_tasks_tests_field_wins_over_its_visible_tests(sandbox: Sandbox) -> None:
    """A task's ``tests`` (here a pytest file) are run, not its ``visible_tests``."""
    validator = passes_tests(sandbox=sandbox)
    fields: dict[str, Any] = {
        "tests": "def test_add():\n    assert add(1, 1) == 2\n",
        "visible_tests": ["assert add(1, 1) == 3"],
    }
    verdict = verdict_of(validator, "def add(a, b):\n    return a + b\n", **fields)
    assert verdict.passed, verdict.reason
    assert verdict.value == "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize(
    "fields",
    [{}, {"visible_tests": []}, {"visible_tests": ["assert 1", 2]}, {"tests": "   "}],
    ids=["none", "empty list", "not all text", "blank file"],
)
def test_a_task_without_usable_tests_is_a_fault_or_with_missing_fail_a_failure(
    sandbox: Sandbox, fields: dict[str, Any]
) -> None:
    """No tests to run: a fault by default, an ordinary failure with ``missing="fail"``."""
    code = "def add(a, b):\n    return a + b\n"
    fault = verdict_of(passes_tests(sandbox=sandbox), code, **fields)
    assert fault.passed is False
    assert fault.fault
    assert fault.reason == "the task carries no tests to run"
    failure = verdict_of(passes_tests(sandbox=sandbox, missing="fail"), code, **fields)
    assert failure.passed is False
    assert not failure.fault


def test_data_files_are_written_beside_the_tests(sandbox: Sandbox) -> None:
    """``files`` are there for the tests to read, apart and in-process alike."""
    files = {"expected.txt": "4"}
    snippets = ["assert add(2, 2) == int(open('expected.txt').read())"]
    code = "def add(a, b):\n    return a + b\n"
    assert verdict_of(passes_tests(snippets, files=files, sandbox=sandbox), code).passed
    pytest_file = "def test_add():\n    assert add(2, 2) == int(open('expected.txt').read())\n"
    assert verdict_of(passes_tests(pytest_file, files=files, sandbox=sandbox), code).passed
    in_process = passes_tests(
        snippets, files=files, sandbox=sandbox, isolation="in-process", isolated_only=False
    )
    verdict = verdict_of(in_process, code)
    assert verdict.passed, verdict.reason
    assert verdict.self_reported


def test_the_validator_names_its_tests() -> None:
    """Its repr says which tests it runs: the task's, a pytest file, or snippets."""
    assert repr(passes_tests()) == "passes_tests()"
    assert repr(passes_tests("def test_x():\n    pass\n")) == "passes_tests(pytest file)"
    assert repr(passes_tests(["assert 1", "assert 2"])) == "passes_tests(2 snippets)"


class CountingSandbox(Sandbox):
    """A sandbox that counts its runs."""

    runs = 0

    async def run(self, *args: Any, **kwargs: Any) -> SandboxResult:
        """Count, then run."""
        self.runs += 1
        return await super().run(*args, **kwargs)


def test_a_verdict_kept_in_the_cache_is_read_back_without_a_run(tmp_path: Path) -> None:
    """The same code and tests again: the kept verdict, and no sandbox started."""
    sandbox = CountingSandbox(Limits(wall_s=20))
    cache = VerdictCache(tmp_path / "verdicts.db")
    validator = passes_tests(["assert add(2, 2) == 4"], sandbox=sandbox, cache=cache)
    code = "def add(a, b):\n    return a + b\n"
    first = verdict_of(validator, code)
    assert first.passed
    assert first.value == code
    ran = sandbox.runs
    assert ran > 0
    again = verdict_of(validator, code)
    assert again.passed
    assert again.value == code
    assert sandbox.runs == ran
    other = verdict_of(validator, "def add(a, b):\n    return 4\n")
    assert other.passed
    assert sandbox.runs > ran
    wrong = "def add(a, b):\n    return 5\n"
    assert verdict_of(validator, wrong).value is None
    ran = sandbox.runs
    kept = verdict_of(validator, wrong)
    assert sandbox.runs == ran
    assert not kept.passed
    assert kept.value is None
    assert "got 5, expected 4" in kept.reason


@pytest.mark.parametrize(
    "tests", [["assert add(2, 2) == 4"], "def test_add():\n    assert add(2, 2) == 4\n"]
)
def test_an_in_process_pass_is_refused_by_default_and_marked_self_reported(
    sandbox: Sandbox, tests: list[str] | str
) -> None:
    """In the code's own process a pass could be forged: refused unless isolated_only=False."""
    code = "def add(a, b):\n    return a + b\n"
    refused = verdict_of(passes_tests(tests, sandbox=sandbox, isolation="in-process"), code)
    assert refused.passed is False
    assert refused.self_reported
    assert refused.reason == (
        "the tests ran in the code's own process, which could have forged this pass"
        " (isolated_tests_only)"
    )
    allowed = passes_tests(tests, sandbox=sandbox, isolation="in-process", isolated_only=False)
    accepted = verdict_of(allowed, code)
    assert accepted.passed, accepted.reason
    assert accepted.self_reported
    assert accepted.value == code
    apart = verdict_of(passes_tests(tests, sandbox=sandbox), code)
    assert apart.passed
    assert not apart.self_reported


_ADD = "def add(a, b):\n    return a + b\n"
_CACHED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "tests": ({"tests": ["assert add(2, 2) == 4"]}, {"tests": ["assert add(2, 2) == 5"]}),
    "setup": (
        {"tests": ["assert add(2, 2) == n"], "setup": "n = 4"},
        {"tests": ["assert add(2, 2) == n"], "setup": "n = 5"},
    ),
    "files": (
        {"tests": ["assert add(2, 2) == int(open('n.txt').read())"], "files": {"n.txt": "4"}},
        {"tests": ["assert add(2, 2) == int(open('n.txt').read())"], "files": {"n.txt": "5"}},
    ),
    "isolated_only": (
        {"tests": ["assert add(2, 2) == 4"], "isolation": "in-process", "isolated_only": False},
        {"tests": ["assert add(2, 2) == 4"], "isolation": "in-process"},
    ),
}


@pytest.mark.parametrize("differs", sorted(_CACHED))
def test_a_cached_verdict_is_never_read_back_for_other_tests(
    sandbox: Sandbox, tmp_path: Path, differs: str
) -> None:
    """Tests, setup, data files or the in-process opt-in that differ are a run of their own."""
    cache = VerdictCache(tmp_path / "verdicts.db")
    first, second = (passes_tests(sandbox=sandbox, cache=cache, **kw) for kw in _CACHED[differs])
    assert verdict_of(first, _ADD).passed
    assert not verdict_of(second, _ADD).passed


def test_a_cached_in_process_verdict_is_not_read_back_for_tests_run_apart(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Tests that pass only in the code's process, run apart after: a verdict of their own."""
    cache = VerdictCache(tmp_path / "verdicts.db")
    tests = ["assert type(make()).__name__ == 'Point'"]
    code = "class Point:\n    pass\ndef make():\n    return Point()\n"
    kept = passes_tests(
        tests, sandbox=sandbox, cache=cache, isolation="in-process", isolated_only=False
    )
    assert verdict_of(kept, code).passed
    apart = passes_tests(tests, sandbox=sandbox, cache=cache, isolated_only=False)
    verdict = verdict_of(apart, code)
    assert not verdict.passed
    assert not verdict.self_reported
    assert "not plain data" in verdict.reason, verdict.reason


def test_an_answer_under_another_name_is_bound_to_the_entry_point(sandbox: Sandbox) -> None:
    """The task's entry point, missing from the answer, is bound to its one function."""
    validator = passes_tests(sandbox=sandbox)
    fields: dict[str, Any] = {"visible_tests": ["assert add(2, 2) == 4"], "entry_point": "add"}
    verdict = verdict_of(validator, "def plus(a, b):\n    return a + b\n", **fields)
    assert verdict.passed, verdict.reason
    assert verdict.reason == "bound plus to add"


def test_an_entry_point_that_cannot_be_bound_is_a_failure_that_says_what_to_define(
    sandbox: Sandbox,
) -> None:
    """Two functions that both fit: no guess, and the model is told which function to define."""
    validator = passes_tests(sandbox=sandbox)
    fields: dict[str, Any] = {"visible_tests": ["assert add(2, 2) == 4"], "entry_point": "add"}
    code = "def plus(a, b):\n    return a + b\ndef sum2(a, b):\n    return a + b\n"
    verdict = verdict_of(validator, code, **fields)
    assert verdict.passed is False
    assert verdict.reason.startswith("the answer defines no function named add")
    assert verdict.feedback == "Define the function add that the task asks for."
    assert not verdict.fault


def test_an_entry_point_that_is_not_a_name_is_ignored(sandbox: Sandbox) -> None:
    """An ``entry_point`` that is no identifier binds nothing; the tests run as they are."""
    validator = passes_tests(sandbox=sandbox)
    fields: dict[str, Any] = {
        "visible_tests": ["assert add(2, 2) == 4"],
        "entry_point": "not a name",
    }
    verdict = verdict_of(validator, "def add(a, b):\n    return a + b\n", **fields)
    assert verdict.passed, verdict.reason
    assert verdict.reason == ""


def test_a_bound_answer_that_fails_says_why_it_failed(sandbox: Sandbox) -> None:
    """The binding note replaces the reason of a pass only: a failure keeps what the tests saw."""
    validator = passes_tests(sandbox=sandbox)
    fields: dict[str, Any] = {"visible_tests": ["assert add(2, 2) == 4"], "entry_point": "add"}
    verdict = verdict_of(validator, "def plus(a, b):\n    return a - b\n", **fields)
    assert not verdict.passed
    assert "got 0, expected 4" in verdict.reason


def test_the_entry_point_crosses_even_when_the_tests_never_name_it(sandbox: Sandbox) -> None:
    """Tests that reach the entry point only through the module still find it."""
    validator = passes_tests(sandbox=sandbox)
    snippet = "import solution\nassert getattr(solution, 'add')(2, 2) == 4"
    fields: dict[str, Any] = {"visible_tests": [snippet], "entry_point": "add"}
    verdict = verdict_of(validator, "def add(a, b):\n    return a + b\n", **fields)
    assert verdict.passed, verdict.reason


def test_a_cached_verdict_is_never_read_back_under_other_limits(tmp_path: Path) -> None:
    """A pass under a roomy memory cap says nothing of the same code under a tight one."""
    cache = VerdictCache(tmp_path / "verdicts.db")
    code = "BLOCK = bytearray(700 << 20)\ndef add(a, b):\n    return a + b\n"
    tests = ["assert add(2, 2) == 4"]
    roomy = Sandbox(Limits(wall_s=20, memory_mb=1024))
    tight = Sandbox(Limits(wall_s=20, memory_mb=512))
    assert verdict_of(passes_tests(tests, sandbox=roomy, cache=cache), code).passed
    assert not verdict_of(passes_tests(tests, sandbox=tight, cache=cache), code).passed


# --- wire.py: plain data across the edge -------------------------------------------------------


def test_a_match_crosses_with_its_groups_spans_and_defaults() -> None:
    """A ``re.Match`` answers ``group``, ``groups``, ``groupdict``, ``span``, ``start``, ``end``."""
    found = re.search(r"(?P<word>[a-z]+)(?P<num>\d+)?(-)?", "..ab12")
    assert found is not None
    match = wire.decode(wire.loads(json.dumps(wire.encode(found))))
    assert match
    assert match.group() == "ab12"
    assert match.group(1, 2) == ("ab", "12")
    assert match.group("word") == "ab"
    assert match[2] == "12"
    assert match.groups() == ("ab", "12", None)
    assert match.groups("-") == ("ab", "12", "-")
    assert match.groupdict() == {"word": "ab", "num": "12"}
    assert match.span() == (2, 6)
    assert match.span(2) == (4, 6)
    assert (match.start(), match.end(), match.start(1), match.end(1)) == (2, 6, 2, 4)
    assert repr(match) == "<Match span=(2, 6), match='ab12'>"
    unmatched = wire.decode(wire.encode(re.search(r"(?P<a>x)?y", "y")))
    assert unmatched.groupdict("none") == {"a": "none"}
    assert unmatched.groups() == (None,)


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (2**53 - 1, 2**53 - 1),
        (-(2**53) + 1, -(2**53) + 1),
        (2**53, ["i", hex(2**53)]),
        (-(2**53), ["i", hex(-(2**53))]),
        (True, True),
        (1.5, 1.5),
        (1 + 2j, ["c", 1.0, 2.0]),
        (b"\x01", ["y", "01"]),
        ((1,), ["t", 1]),
        (collections.Counter("a"), ["ctr", "a", 1]),
        (collections.OrderedDict(a=1), ["od", "a", 1]),
        (iter([1]), ["it", 1]),
    ],
)
def test_the_wire_format_of_each_kind(value: object, sent: object) -> None:
    """Ints past 2**53 travel in hex (a JSON reader keeps smaller ones exact); each kind its tag."""
    assert wire.encode(value) == sent


def test_an_iterator_crosses_as_an_iterator_over_what_it_yielded() -> None:
    """Decoded, a generator's items come back as an iterator, not a list."""
    back = wire.decode(wire.encode(x for x in (1, 2)))
    assert not isinstance(back, list)
    assert next(back) == 1
    assert list(back) == [2]


def test_a_value_nested_past_the_depth_bound_is_refused_on_the_answers_side() -> None:
    """Encoding stops at MAX_DEPTH, naming it; just under it is fine."""
    deep: list[object] = []
    for _ in range(wire.MAX_DEPTH - 1):
        deep = [deep]
    assert wire.decode(wire.encode(deep)) == deep
    with pytest.raises(wire.Unplain, match=f"nested more than {wire.MAX_DEPTH} deep"):
        wire.encode([deep])
    with pytest.raises(wire.Unplain, match="nested more than"):
        wire.encode({"k": [[deep]]})


def test_the_item_bound_counts_mapping_entries_and_items_on_both_sides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_ITEMS, in a dict or a list, encoding and decoding refuse, naming the bound."""
    monkeypatch.setattr(wire, "MAX_ITEMS", 10)
    assert wire.decode(wire.encode(list(range(10)))) == list(range(10))
    assert wire.decode(wire.encode({i: i for i in range(5)})) == {i: i for i in range(5)}
    assert len(wire.encode({i: i for i in range(10)})) == 21
    with pytest.raises(wire.Unplain, match="more than 10 items"):
        wire.encode({i: i for i in range(11)})
    with pytest.raises(wire.Unplain, match="more than 10 items"):
        wire.encode([*range(11)])
    with pytest.raises(wire.Unplain, match="more than 10 items"):
        wire.decode(["l", *range(11)])
    with pytest.raises(wire.Unplain, match="more than 10 items"):
        wire.decode(["d", *range(12)])
    with pytest.raises(wire.Unplain, match="more than 10 items"):
        wire.decode(["l", ["l", *range(6)], ["l", *range(6)]])


def wrapped(depth: int, inner: object) -> object:
    """``inner`` inside ``depth`` lists: it sits at that depth of the value."""
    for _ in range(depth):
        inner = [inner]
    return inner


class _Pair(NamedTuple):
    """A namedtuple, which crosses as the tuple it is."""

    x: object
    y: object


class _Fielded:
    """Not a tuple, though it has ``_fields`` like a namedtuple."""

    _fields = ("x",)


_HOLDERS: dict[str, Any] = {
    "a mapping's key": lambda: {(): 0},
    "a mapping's value": lambda: {"k": ()},
    "a re.Match": lambda: re.match("a", "a"),
    "a namedtuple": lambda: _Pair((), 0),
    "a numpy array": lambda: pytest.importorskip("numpy").array([[1]]),
}
"""Values that hold a container one level below them, each its own way."""


@pytest.mark.parametrize("holder", sorted(_HOLDERS))
def test_the_depth_bound_counts_what_each_kind_of_value_holds(holder: str) -> None:
    """A value whose contents reach MAX_DEPTH - 1 is sent; one level deeper is refused."""
    value = _HOLDERS[holder]()
    sent = wire.encode(wrapped(wire.MAX_DEPTH - 2, value))
    assert wire.decode(sent) is not None
    with pytest.raises(wire.Unplain, match=rf"^a value nested more than {wire.MAX_DEPTH} deep$"):
        wire.encode(wrapped(wire.MAX_DEPTH - 1, value))


def chain(tag: str, top: int, deepest: int) -> list[Any]:
    """Encoded containers of ``tag``, each in the last, from depth ``top`` down to ``deepest``."""
    data: list[Any] = [tag]
    for _ in range(deepest - top):
        data = [tag, data]
    return data


def wrapped_data(depth: int, data: list[Any]) -> list[Any]:
    """Encoded ``data`` inside ``depth`` encoded lists."""
    for _ in range(depth):
        data = ["l", data]
    return data


_PLACES: dict[str, Any] = {
    "a list's item": lambda deepest: ["l", chain("l", 1, deepest)],
    "a mapping's key": lambda deepest: ["d", chain("t", 1, deepest), 0],
    "a mapping's value": lambda deepest: ["d", "k", chain("l", 1, deepest)],
    "a match's groups": lambda deepest: ["m", ["l", chain("l", 2, deepest)], [[0, 0]], ["d"]],
    "a match's named groups": lambda deepest: (
        ["m", ["l", ""], [[0, 0]], ["d", "k", chain("l", 2, deepest)]]
    ),
    "a match inside a list": lambda deepest: wrapped_data(
        deepest - 1, ["m", ["l", ""], [[0, 0]], ["d"]]
    ),
}
"""Where a sent container can sit, as the answer's side could send it (crafted or not)."""


@pytest.mark.parametrize("place", sorted(_PLACES))
def test_the_tests_side_refuses_a_container_sent_past_the_depth_bound(place: str) -> None:
    """Wherever a container sits, depth MAX_DEPTH - 1 is read back and MAX_DEPTH is refused."""
    make = _PLACES[place]
    assert wire.decode(make(wire.MAX_DEPTH - 1)) is not None
    with pytest.raises(wire.Unplain, match=r"^a malformed value$"):
        wire.decode(make(wire.MAX_DEPTH))


@pytest.mark.parametrize(
    ("value", "back"),
    [
        ({1, 2}, {1, 2}),
        (frozenset({3}), frozenset({3})),
        (_Pair(1, 2), (1, 2)),
        (collections.defaultdict(int, a=1), {"a": 1}),
        ({(1, 2): [3]}, {(1, 2): [3]}),
        (re.match("a", "a"), None),
    ],
    ids=["set", "frozenset", "namedtuple", "defaultdict", "tuple key", "match"],
)
def test_each_kind_reads_back_as_its_plain_builtin(value: object, back: object) -> None:
    """Sent and read back, a value is the builtin it was, or the plain one it stands for."""
    read = wire.decode(json.loads(json.dumps(wire.encode(value))))
    if back is None:
        assert read
    else:
        assert read == back
        assert type(read) is type(back)


def test_numpy_values_cross_as_the_builtins_they_hold() -> None:
    """A numpy number or array is sent as its ``tolist()``; other objects with one are not."""
    numpy = pytest.importorskip("numpy")
    assert wire.encode(numpy.int64(3)) == 3
    assert wire.encode(numpy.array([[1, 2]])) == ["l", ["l", 1, 2]]


def test_a_matchs_start_and_end_default_to_the_whole_match() -> None:
    """As with ``re.Match``: ``start()`` and ``end()`` are group 0's, not group 1's."""
    found = re.search(r"a(b)c", "xabcx")
    assert found is not None
    match = wire.decode(wire.encode(found))
    assert (match.start(), match.end()) == (found.start(), found.end()) == (1, 4)
    assert (match.start(1), match.end(1)) == (2, 3)


def test_a_numpy_array_that_holds_itself_is_refused_by_name() -> None:
    """Its ``tolist()`` gives the array back: refused as not plain data, not encoded forever."""
    numpy = pytest.importorskip("numpy")
    itself = numpy.empty((), dtype=object)
    itself[()] = itself
    with pytest.raises(wire.Unplain) as refused:
        wire.encode(itself)
    assert str(refused.value) == "an instance of numpy.ndarray, not plain data"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (_Fielded(), f"{__name__}._Fielded"),
        (array.array("i", [1]), "array.array"),
        (memoryview(b"ab"), "builtins.memoryview"),
    ],
)
def test_objects_that_only_look_like_plain_data_are_refused_by_name(
    value: object, named: str
) -> None:
    """A ``_fields`` attribute or a ``tolist`` method does not make a value plain data."""
    with pytest.raises(wire.Unplain) as refused:
        wire.encode(value)
    assert str(refused.value) == f"an instance of {named}, not plain data"


@pytest.mark.parametrize(
    "data",
    [
        ["q", "00"],
        ["y", 1],
        ["q", ["l", "a"], [[0, 1]], ["d"]],
        ["m", ["l", "a"], "x", ["d"]],
        ["m", ["l", "a"], [[0, 1], [0, 1]], ["d"]],
        ["m", ["t", "a"], [[0, 1]], ["d"]],
        [],
        ["l", {}],
    ],
    ids=["unknown tag", "bytes not hex", "unknown tag of 3", "spans not a list",
         "spans not one per group", "groups not a list", "empty", "a JSON object"],
)  # fmt: skip
def test_a_malformed_value_is_refused_as_such(data: list[Any]) -> None:
    """An encoding the answer's side never makes is refused, not read as something else."""
    with pytest.raises(wire.Unplain) as refused:
        wire.decode(data)
    assert str(refused.value) == "a malformed value"


def test_the_tests_side_says_why_a_value_cannot_be_read() -> None:
    """An odd mapping, an unhashable key and JSON that does not parse each give their reason."""
    with pytest.raises(wire.Unplain) as odd:
        wire.decode(["d", "k"])
    assert str(odd.value) == "a malformed mapping"
    with pytest.raises(wire.Unplain) as unhashable:
        wire.decode(["s", ["l"]])
    assert (
        str(unhashable.value)
        == "a value that cannot be rebuilt (TypeError: unhashable type: 'list')"
    )
    with pytest.raises(wire.Unplain) as broken:
        wire.loads(b"[1,")
    assert str(broken.value) == "a line that is not JSON (JSONDecodeError)"


@pytest.mark.parametrize("data", [["s", 1], ["d", "k", 1], ["ctr", "k", 1]])
def test_with_no_time_left_even_one_item_is_not_hashed(data: list[Any]) -> None:
    """The rebuilding time is checked before the first item of a set or mapping, then every 64."""
    with pytest.raises(wire.Unplain) as late:
        wire.decode(data, seconds=-1)
    assert str(late.value) == "a value that takes too long to rebuild (keys that share one hash?)"
    assert wire.decode(data, seconds=60)


def test_a_line_of_exactly_the_line_bound_is_read_and_one_byte_more_is_not() -> None:
    """``loads`` takes MAX_LINE_BYTES of JSON and refuses a longer line, naming the bound in MiB."""
    line = b"7" + b" " * (wire.MAX_LINE_BYTES - 1)
    assert wire.loads(line) == 7
    with pytest.raises(wire.Unplain) as long:
        wire.loads(line + b" ")
    assert str(long.value) == f"a value over {wire.MAX_LINE_BYTES >> 20} MiB"


# --- sandbox.py: what a Sandbox is made of, and the files it accepts ----------------------------


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"mode": "docker"}, "sandbox mode must be 'bwrap' or 'unshare', got 'docker'"),
        ({"warm": -1}, "warm must be 0 or more sandboxes, got -1"),
    ],
)
def test_a_sandbox_misconfigured_is_refused_saying_why(settings: Any, reason: str) -> None:
    """An unknown mode or a negative number of started sandboxes is refused at once."""
    with pytest.raises(ConfigError) as refused:
        Sandbox(**settings)
    assert str(refused.value) == reason


def test_a_sandbox_keeps_its_settings_and_has_defaults() -> None:
    """Default limits, two started ahead with bubblewrap, none when asked; a mode given is kept."""
    assert repr(Sandbox()) == f"Sandbox({Limits()!r})"
    assert Sandbox(mode="bwrap").describe().endswith("; 2 started ahead")
    assert Sandbox(mode="bwrap", warm=0).describe().endswith("; 0 started ahead")
    assert Sandbox(mode="unshare").describe() == f"unshare; {describe()}"


@pytest.mark.parametrize(
    "name", ["../x.py", "sub/x.py", ".hidden", "", "_cascade_guard.py", "_cascade_filter.bpf"]
)
def test_a_file_name_that_is_not_plain_is_refused_before_anything_runs(name: str) -> None:
    """A path, a hidden or empty name, or one of the sandbox's own files is a ConfigError."""
    with pytest.raises(ConfigError) as refused:
        asyncio.run(Sandbox(mode="bwrap").run({name: ""}, ["-c", "pass"]))
    assert str(refused.value) == f"sandbox file names must be plain names, got {name!r}"


_WHO = (
    "import os; print(open('/proc/1/comm').read().strip(), os.getuid())\n"
    "print(open('/proc/self/cgroup').read())"
)
"""Run in a sandbox: what its first process is, whose uid the code has, and its cgroups."""


def inside(mode: str) -> list[str]:
    """What :data:`_WHO` prints in a sandbox of ``mode`` started on demand."""
    ran = asyncio.run(Sandbox(mode=mode, warm=0).run({}, ["-c", _WHO]))
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.split()


@pytest.mark.skipif(os.geteuid() != 0, reason="both modes run as root only")
@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
def test_a_sandbox_runs_the_code_in_the_mode_it_names_as_a_uid_of_the_pool(mode: str) -> None:
    """Bubblewrap is the code's first process in bwrap mode only; the code runs as a pool uid."""
    first, uid = inside(mode)[:2]
    assert (first == "bwrap") == (mode == "bwrap")
    assert int(uid) in range(64100, 64164)


@pytest.mark.skipif(os.geteuid() != 0, reason="a cgroup is made as root only")
def test_a_run_has_a_cgroup_of_its_own_and_leaves_it_and_its_folder_behind_it() -> None:
    """Named as the run's scratch folder; neither is left once the run is over."""
    if "a cgroup v1 per sandbox" not in describe():
        pytest.skip("no writable cgroup v1 here")
    listed = [line for line in inside("unshare")[2:] if ":pids:" in line]
    name = listed[0].rsplit("/", 1)[-1]
    assert name.startswith("cascade-sandbox-")
    assert not (Path("/sys/fs/cgroup/pids") / name).exists()
    assert not (Path(tempfile.gettempdir()) / name).exists()


# --- code_tests.py: in-process runs, limits, configuration --------------------------------------


def in_process(sandbox: Sandbox, tests: list[str] | str, setup: str = "") -> Any:
    """``passes_tests`` run in the code's own process, its passes accepted."""
    return passes_tests(
        tests, setup=setup, sandbox=sandbox, isolation="in-process", isolated_only=False
    )


def test_in_process_failures_are_counted_and_named(sandbox: Sandbox) -> None:
    """In the code's process too, a failure names the test, its line and what went wrong."""
    tests = ["assert add(1, 1) == 2", "assert add(2, 2) == 5"]
    verdict = verdict_of(in_process(sandbox, tests), "def add(a, b):\n    return a + b\n")
    assert not verdict.passed
    assert verdict.self_reported
    assert verdict.reason == (
        "1 of 2 test(s) failed; first: test 2: assert add(2, 2) == 5 (AssertionError)"
    )


def test_in_process_a_setup_that_fails_stops_the_run(sandbox: Sandbox) -> None:
    """A setup that raises is the one failure reported: no test runs after it."""
    validator = in_process(sandbox, ["assert add(1, 1) == 2"], setup="import nosuchmodule")
    verdict = verdict_of(validator, "def add(a, b):\n    return a + b\n")
    assert not verdict.passed
    assert verdict.reason.startswith("1 of 1 test(s) failed; first: setup: import nosuchmodule")
    assert "ModuleNotFoundError" in verdict.reason


def test_in_process_code_that_ends_the_process_has_not_passed(sandbox: Sandbox) -> None:
    """Code that exits before the tests report is a failure saying so, whatever it printed."""
    code = (
        "import json, os\n"
        "forged = json.dumps({'cases': 1, 'failures': []})\n"
        "print('CASCADE-RESULT-0000000000000000:' + forged, flush=True)\n"
        "os._exit(0)\n"
    )
    verdict = verdict_of(in_process(sandbox, ["assert add(1, 1) == 2"]), code)
    assert verdict.passed is False
    assert verdict.reason == (
        "the tests ended without reporting (exit code 0): "
        'CASCADE-RESULT-0000000000000000:{"cases": 1, "failures": []}'
    )
    assert verdict.feedback == "The code must not exit or end the process while it is tested."
    assert verdict.self_reported


@pytest.mark.parametrize(
    "tests", [["assert add(1, 1) == 2"], "def test_add():\n    assert add(1, 1) == 2\n"]
)
def test_code_killed_at_its_limit_is_blamed_for_it(tests: list[str] | str) -> None:
    """An answer that runs out of time fails saying the code was killed, not a test."""
    tight = Sandbox(Limits(wall_s=20, cpu_s=1))
    code = "def add(a, b):\n    while True:\n        pass\n"
    verdict = verdict_of(passes_tests(tests, sandbox=tight), code)
    assert not verdict.passed
    assert not verdict.fault
    assert verdict.reason.startswith("the code was killed"), verdict.reason


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"isolation": "elsewhere"}, "isolation must be 'apart' or 'in-process'"),
        ({"missing": "skip"}, "missing must be 'fault' or 'fail'"),
        ({"tests": ["assert 1", 2]}, "tests must be pytest code, a path, or a list of snippets"),
        ({"files": {"run.py": ""}}, "test files must have plain, unreserved names, got 'run.py'"),
        ({"files": {"_cascade_x": ""}}, "test files must have plain, unreserved names"),
        ({"files": {"a/b": ""}}, "test files must have plain, unreserved names"),
        ({"files": {".hidden": ""}}, "test files must have plain, unreserved names"),
        ({"files": {"": ""}}, "test files must have plain, unreserved names"),
    ],
)
def test_a_misconfigured_validator_is_refused_at_once(
    arguments: dict[str, Any], words: str
) -> None:
    """Bad options are a ConfigError when the validator is made, naming what is wrong."""
    arguments = {"tests": ["assert 1"], **arguments}
    with pytest.raises(ConfigError) as raised:
        passes_tests(**arguments)
    assert str(raised.value).startswith(words), str(raised.value)


def test_tests_read_from_a_path(sandbox: Sandbox, tmp_path: Path) -> None:
    """A ``Path`` is read as a pytest file; one that cannot be read is a ConfigError naming it."""
    path = tmp_path / "test_add.py"
    path.write_text("def test_add():\n    assert add(2, 2) == 4\n", encoding="utf-8")
    validator = passes_tests(path, sandbox=sandbox)
    assert repr(validator) == "passes_tests(pytest file)"
    assert verdict_of(validator, "def add(a, b):\n    return a + b\n").passed
    with pytest.raises(ConfigError, match=r"cannot read tests .*missing\.py"):
        passes_tests(tmp_path / "missing.py")


def test_a_tuple_of_snippets_and_plain_file_names_are_accepted(sandbox: Sandbox) -> None:
    """Snippets may come as any sequence of text; dotted and dashed data file names are plain."""
    validator = passes_tests(
        ("assert add(1, 1) == 2",), files={"in-put.v2.txt": "x"}, sandbox=sandbox
    )
    assert repr(validator) == "passes_tests(1 snippets)"
    assert verdict_of(validator, "def add(a, b):\n    return a + b\n").passed


def test_a_cached_verdict_is_never_read_back_for_another_entry_point(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The names that cross (here set by the task's entry point) are part of what was judged."""
    cache = VerdictCache(tmp_path / "verdicts.db")
    validator = passes_tests(sandbox=sandbox, cache=cache)
    snippet = "import solution\nassert getattr(solution, 'add')(2, 2) == 4"
    named: dict[str, Any] = {"visible_tests": [snippet], "entry_point": "add"}
    assert verdict_of(validator, _ADD, **named).passed
    unnamed: dict[str, Any] = {"visible_tests": [snippet]}
    assert not verdict_of(validator, _ADD, **unnamed).passed


# --- confine.py: the seccomp filter's decision for each syscall, on both machines ----------------

_ALLOW, _EPERM, _ENOSYS, _EAFNOSUPPORT = 0x7FFF0000, 0x00050001, 0x00050026, 0x00050061
_NEWUSER, _NEWNS = 0x10000000, 0x00020000
_MACHINES = {
    # machine: (AUDIT_ARCH_*, syscall numbers from the kernel's tables)
    "x86_64": (0xC000003E, {
        "read": 0, "unshare": 272, "clone": 56, "clone3": 435, "socket": 41, "socketpair": 53,
        "add_key": 248, "request_key": 249, "keyctl": 250,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    }),
    "aarch64": (0xC00000B7, {
        "read": 63, "unshare": 97, "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199,
        "add_key": 217, "request_key": 218, "keyctl": 219,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    }),
}  # fmt: skip


def run_filter(program: bytes, arch: int, number: int, arg0: int = 0) -> int:
    """What the kernel would do with a classic-BPF seccomp ``program`` for this syscall."""
    data = struct.pack("<iIQ6Q", number, arch, 0, arg0, 0, 0, 0, 0, 0)
    ops = [struct.unpack_from("<HBBI", program, at) for at in range(0, len(program), 8)]
    pc, a = 0, 0
    while True:
        code, true, false, k = ops[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x06:  # BPF_RET | BPF_K
            return int(k)
        else:
            taken = {0x15: a == k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += true if taken else false
        pc += 1


@pytest.mark.parametrize("machine", sorted(_MACHINES))
def test_the_seccomp_filter_decides_each_syscall_as_documented(machine: str) -> None:
    """New user namespaces, the keyring and odd socket families refused; io_uring is ENOSYS."""
    arch, number = _MACHINES[machine]
    program = seccomp_filter(machine)

    def decide(name: str, arg0: int = 0) -> int:
        return run_filter(program, arch, number[name], arg0)

    assert decide("read") == _ALLOW
    for name in ("unshare", "clone"):
        assert decide(name, _NEWUSER) == _EPERM
        assert decide(name, _NEWUSER | _NEWNS) == _EPERM
        assert decide(name, _NEWNS) == _ALLOW
        assert decide(name, 0) == _ALLOW
    for name in ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert decide(name) == _ENOSYS
    for name in ("add_key", "request_key", "keyctl"):
        assert decide(name) == _EPERM
    for name in ("socket", "socketpair"):
        for family in (1, 2, 10):  # AF_UNIX, AF_INET, AF_INET6
            assert decide(name, family) == _ALLOW
        for family in (0, 3, 16, 17, 40, 44):  # netlink, packet, vsock, xdp ...
            assert decide(name, family) == _EAFNOSUPPORT
    assert run_filter(program, 0x40000003, number["read"]) == _EPERM  # i386 on this kernel
    assert run_filter(program, arch, 0x40000000 | number["read"]) == _EPERM  # x32
    assert run_filter(program, arch, 0x3FFFFFFF) == _ALLOW


def test_a_sandboxs_etc_names_nobody_and_its_own_uid_and_nothing_else(tmp_path: Path) -> None:
    """The sandbox's /etc: root, nobody and (for a uid of the pool) the sandbox user, read-only."""
    (tmp_path / "pool").mkdir()
    etc = write_etc(tmp_path / "pool")
    assert etc == tmp_path / "pool" / "etc"
    assert sorted(p.name for p in etc.iterdir()) == ["group", "passwd"]
    assert (etc / "passwd").read_text() == (
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/sandbox:/bin/sh\n"
    )
    assert (etc / "group").read_text() == "root:x:0:\nnogroup:x:65534:\n"
    assert (etc / "passwd").stat().st_mode & 0o777 == 0o644
    assert etc.stat().st_mode & 0o777 == 0o755
    own = write_etc(tmp_path, 64101)
    assert (
        (own / "passwd")
        .read_text()
        .endswith(
            "nobody:x:65534:65534:nobody:/sandbox:/bin/sh\n"
            "sandbox:x:64101:64101:sandbox:/sandbox:/bin/sh\n"
        )
    )


def test_processes_of_counts_a_uids_processes() -> None:
    """Our uid runs at least this process; a uid that no one uses runs none."""
    assert processes_of(os.getuid()) >= 1
    assert processes_of(64099) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a cgroup is made as root only")
def test_a_cgroup_caps_pids_and_memory_and_is_removed() -> None:
    """A run's cgroup holds its limits, and is gone once removed."""
    try:
        cgroup = Cgroup(f"cascade-test-{secrets.token_hex(6)}", 7, 100)
    except OSError:
        pytest.skip("no writable cgroup with pids and memory here")
    folders = [Path(p).parent for p in cgroup.procs]
    assert all(folder.is_dir() for folder in folders)
    pids = next(f for f in folders if (f / "pids.max").exists())
    assert (pids / "pids.max").read_text().strip() == "7"
    memory = next(
        f for f in folders if (f / "memory.max").exists() or (f / "memory.limit_in_bytes").exists()
    )
    limit = memory / ("memory.max" if cgroup.version == 2 else "memory.limit_in_bytes")
    assert int(limit.read_text()) == 100 << 20
    if cgroup.version == 2:
        assert (memory / "memory.swap.max").read_text().strip() == "0"
    cgroup.remove()
    assert not any(folder.exists() for folder in folders)
    cgroup.remove()  # a second time finds nothing to remove


def test_describe_says_which_mechanisms_keep_sandboxes_apart() -> None:
    """For people: seccomp always; as root the pool's size and the cgroup, if there is one."""
    said = describe()
    assert said.startswith("user namespaces refused (seccomp); ")
    if os.geteuid() == 0:
        assert "a uid of its own per sandbox (64 in the pool)" in said
        assert ("a cgroup v" in said) != ("no writable cgroup" in said)
    else:
        assert said.endswith("unprivileged: one uid shared with the caller's processes")


def test_a_failure_names_the_snippet_and_its_failing_line(sandbox: Sandbox) -> None:
    """The reason names which test failed, the line that failed in it, and why."""
    snippets = ["assert f(0) == 5", "x = f(1)\nassert x == 4\nassert x == 5"]
    verdict = judge(sandbox, "def f(x):\n    return 5\n", snippets)
    assert verdict.reason == (
        "1 of 2 test(s) failed; first: test 2: assert x == 4 (AssertionError: got 5, expected 4)"
    )


@pytest.mark.parametrize(
    "tests", [["while True:\n    pass"], "def test_x():\n    while True:\n        pass\n"]
)
def test_tests_killed_at_their_cpu_limit_say_so(tests: list[str] | str) -> None:
    """Tests that spin are killed at the CPU limit, and the reason names it."""
    tight = Sandbox(Limits(wall_s=20, cpu_s=1))
    verdict = verdict_of(passes_tests(tests, sandbox=tight), _ADD)
    assert not verdict.passed
    assert "(CPU limit 1 s)" in verdict.reason, verdict.reason


def test_in_process_a_fault_is_the_codes_failure_and_says_where_it_ran(tmp_path: Path) -> None:
    """What would be a fault apart is, in the code's own process, a failure saying so, not kept."""
    sandbox = CountingSandbox(Limits(wall_s=20))
    cache = VerdictCache(tmp_path / "verdicts.db")
    tests = "def test_add():\n    assert add(2, 2) == 4\n"
    validator = passes_tests(
        tests, sandbox=sandbox, cache=cache, isolation="in-process", isolated_only=False
    )
    for _ in range(2):
        verdict = verdict_of(validator, "import os\nos._exit(5)\n")
        assert verdict.passed is False
        assert not verdict.fault
        assert verdict.self_reported
        assert verdict.reason == "the tests hold no test functions (in the code's own process)"
    assert sandbox.runs == 2


def test_in_process_tests_killed_at_their_cpu_limit_say_so() -> None:
    """In the code's process too, a run killed at the CPU limit names the limit."""
    tight = Sandbox(Limits(wall_s=20, cpu_s=1))
    code = "def add(a, b):\n    while True:\n        pass\n"
    for tests in (["assert add(1, 1) == 2"], "def test_add():\n    assert add(1, 1) == 2\n"):
        verdict = verdict_of(in_process(tight, tests), code)
        assert not verdict.passed
        assert "(CPU limit 1 s)" in verdict.reason, verdict.reason


def test_in_process_code_that_fails_to_load_is_the_one_failure(sandbox: Sandbox) -> None:
    """An answer that raises on import fails once, as ``solution``: no test runs after it."""
    code = "raise ValueError('no')\n"
    verdict = verdict_of(in_process(sandbox, ["assert add(1, 1) == 2", "assert 1"]), code)
    assert verdict.reason == (
        "1 of 2 test(s) failed; first: solution: raise ValueError('no') (ValueError: no)"
    )


def test_an_in_process_verdict_read_back_from_the_cache_is_still_self_reported(
    tmp_path: Path,
) -> None:
    """Kept and read back, an in-process pass is still marked as one the code could forge."""
    sandbox = CountingSandbox(Limits(wall_s=20))
    cache = VerdictCache(tmp_path / "verdicts.db")
    validator = passes_tests(
        ["assert add(1, 1) == 2"],
        sandbox=sandbox,
        cache=cache,
        isolation="in-process",
        isolated_only=False,
    )
    assert verdict_of(validator, _ADD).passed
    assert sandbox.runs == 1
    again = verdict_of(validator, _ADD)
    assert again.passed
    assert again.self_reported
    assert sandbox.runs == 1


def test_code_that_is_not_valid_utf8_is_a_failure_naming_where(sandbox: Sandbox) -> None:
    """A lone surrogate cannot be written for the sandbox: a failure naming its position."""
    verdict = verdict_of(passes_tests(["assert 1"], sandbox=sandbox), "x = 1  # \ud800\n")
    reason = "the code holds a character that is not valid UTF-8 at position 9"
    assert verdict.passed is False
    assert not verdict.fault
    assert verdict.reason == reason
    assert verdict.feedback == f"Fix this: {reason}."


def test_limits_given_without_a_sandbox_bound_the_run() -> None:
    """``passes_tests(limits=...)`` makes its sandbox under those limits."""
    validator = passes_tests(["assert add(1, 1) == 2"], limits=Limits(wall_s=20, cpu_s=1))
    verdict = verdict_of(validator, "def add(a, b):\n    while True:\n        pass\n")
    assert not verdict.passed
    assert "(CPU limit 1 s)" in verdict.reason, verdict.reason


def test_an_in_process_verdict_the_tests_reported_is_kept_and_read_back(tmp_path: Path) -> None:
    """Pass or fail, a verdict the in-process tests reported is kept: the second run reads it."""
    sandbox = CountingSandbox(Limits(wall_s=20))
    cache = VerdictCache(tmp_path / "verdicts.db")
    validator = passes_tests(
        ["assert add(1, 1) == 2"],
        sandbox=sandbox,
        cache=cache,
        isolation="in-process",
        isolated_only=False,
    )
    for code, passes in ((_ADD, True), ("def add(a, b):\n    return 3\n", False)):
        ran = sandbox.runs
        assert verdict_of(validator, code).passed is passes
        assert verdict_of(validator, code).passed is passes
        assert sandbox.runs == ran + 1


# --- sandbox.py: the first run's check, started sandboxes, what the code sees -------------------

_ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the pool's uids are used as root only")


@pytest.mark.parametrize(
    ("stdout", "stderr", "status", "detail"),
    [
        ("ok", "0" * 600 + "tail", 3, ("0" * 600 + "tail")[-500:]),
        ("nope", "", 0, "nope"),
    ],
    ids=["fails after printing ok", "prints something else"],
)
def test_a_python_that_cannot_run_the_check_is_refused_with_the_end_of_what_it_said(
    stdout: str, stderr: str, status: int, detail: str
) -> None:
    """Status 0 and 'ok' are both needed; the refusal quotes stderr's last 500 chars, or stdout."""
    home = Path(tempfile.mkdtemp(prefix="cascade-fake-python-"))
    try:
        (home / "bin").mkdir()
        fake = home / "bin" / "python"
        fake.write_text(f"#!/bin/sh\nprintf '{stdout}\\n'\nprintf '{stderr}' >&2\nexit {status}\n")
        for path in (home, home / "bin", fake):
            path.chmod(0o755)
        broken = Sandbox(Limits(wall_s=20), mode="bwrap", warm=0)
        broken._python = str(fake)
        with pytest.raises(ConfigError) as refused:
            asyncio.run(broken.run({}, ["-c", "pass"]))
        assert str(refused.value) == f"the bwrap sandbox cannot start Python: {detail}"
    finally:
        shutil.rmtree(home)


def test_the_runs_files_reach_the_sandbox_as_utf8_whatever_the_hosts_locale() -> None:
    """Code with non-ASCII text runs as written while the host's locale is plain ASCII."""
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        assert locale.getpreferredencoding(False) != "UTF-8"
        ran = asyncio.run(
            Sandbox(Limits(wall_s=20), mode="bwrap", warm=0).run(
                {"say.py": "print('caf\u00e9 \u2713')\n"}, ["say.py"]
            )
        )
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert (ran.returncode, ran.stdout) == (0, "caf\u00e9 \u2713\n"), ran.stderr


@_ROOT_ONLY
@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
def test_the_codes_uid_has_a_name_in_the_sandboxs_passwd(mode: str) -> None:
    """The pool uid the code runs as is named 'sandbox' in its /etc/passwd, in either mode."""
    code = "import os, pwd\nprint(pwd.getpwuid(os.getuid()).pw_name, os.getuid())\n"
    ran = asyncio.run(Sandbox(Limits(wall_s=20), mode=mode, warm=0).run({}, ["-c", code]))
    assert ran.returncode == 0, ran.stderr
    name, uid = ran.stdout.split()
    assert name == "sandbox"
    assert int(uid) in range(64100, 64164)


def test_a_start_ahead_that_is_refused_leaves_the_runs_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ConfigError while starting ahead is not the run's: runs start on demand, nothing raised."""

    def refused(*_: object) -> None:
        raise ConfigError("the uid pool's folder is not ours")

    monkeypatch.setattr("cascade.validators.warm.start", refused)
    faults: list[object] = []

    async def go() -> list[SandboxResult]:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: faults.append(context))
        sandbox = Sandbox(Limits(wall_s=20), mode="bwrap")
        found = [await sandbox.run({}, ["-c", "print(6 * 7)"]) for _ in range(2)]
        await asyncio.sleep(0.1)  # the refills after the runs
        return found

    found = asyncio.run(go())
    assert [(r.stdout.strip(), r.prestarted) for r in found] == [("42", False)] * 2
    assert faults == []


@_ROOT_ONLY
def test_an_unshare_sandbox_starts_none_ahead_and_runs_each_job_with_unshare() -> None:
    """Started sandboxes are bubblewrap's: an unshare sandbox's runs are all started for them."""

    async def go() -> list[SandboxResult]:
        sandbox = Sandbox(Limits(wall_s=20), mode="unshare")
        try:
            found = []
            for _ in range(3):
                found.append(await sandbox.run({}, ["-c", "print(open('/proc/1/comm').read())"]))
                await asyncio.sleep(0.2)  # time for a refill, were there one
            return found
        finally:
            sandbox.close()

    found = asyncio.run(go())
    assert [(r.stdout.strip(), r.prestarted) for r in found] == [("sh", False)] * 3


def test_runs_inside_a_reservation_use_the_started_sandboxes_it_holds() -> None:
    """reserve(2) holds both started sandboxes, and the two runs inside are handed them."""

    async def go() -> list[SandboxResult]:
        sandbox = Sandbox(Limits(wall_s=20), mode="bwrap")
        try:
            await sandbox.run({}, ["-c", "pass"])  # the check; it takes one of the two started
            await asyncio.sleep(0.2)  # its refill: two started ahead again
            async with sandbox.reserve(2):
                return list(
                    await asyncio.gather(
                        sandbox.run({}, ["-c", "print(1)"]), sandbox.run({}, ["-c", "print(2)"])
                    )
                )
        finally:
            sandbox.close()

    found = asyncio.run(go())
    assert [(r.stdout.strip(), r.prestarted) for r in found] == [("1", True), ("2", True)]


_SEND = "import socket, sys\nsocket.socket(fileno=int(sys.argv[1])).sendall(b'ping')\n"
"""Run in a sandbox: sends 'ping' on the socket handed on as ``{peer}``."""


@pytest.mark.parametrize("warm", [2, 0], ids=["started ahead", "on demand"])
def test_a_run_hands_on_its_peer_and_says_when_the_sandbox_holds_it(warm: int) -> None:
    """The code writes to the peer given; spawned is called once, so the host's end can close."""

    async def go() -> tuple[SandboxResult, list[int], bytes]:
        sandbox = Sandbox(Limits(wall_s=20), mode="bwrap", warm=warm)
        try:
            await sandbox.run({}, ["-c", "pass"])
            await asyncio.sleep(0.2)  # two started ahead, where there are any
            ours, theirs = socket.socketpair()
            calls: list[int] = []

            def spawned() -> None:
                calls.append(ours.fileno())
                ours.close()

            with theirs:
                ran = await sandbox.run(
                    {"send.py": _SEND}, ["send.py", "{peer}"], peer=ours.fileno(), spawned=spawned
                )
                theirs.settimeout(5)
                got = b""
                with contextlib.suppress(TimeoutError):  # an end of ours still open: no EOF
                    while chunk := await asyncio.to_thread(theirs.recv, 16):
                        got += chunk
            ours.close()
            return ran, calls, got
        finally:
            sandbox.close()

    ran, calls, got = asyncio.run(go())
    assert (ran.returncode, ran.prestarted) == (0, warm > 0), ran.stderr
    assert len(calls) == 1
    assert got == b"ping"

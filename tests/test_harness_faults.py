"""A verdict that stops a task is about the answer: what the answer caused is a rejection.

A validator fault stops the task (the next tier is never asked), so it must mean that something
of ours is broken. Every case below was a fault the answer itself caused, and is now a
rejection with its reason; a sandbox of ours that cannot start stays a fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import pytest

from cascade.testing import verdict_of
from cascade.validators import passes_tests
from cascade.validators.sandbox import Limits, Sandbox, SandboxResult

TESTS = "def test_add():\n    assert add(2, 2) == 4\n"
RIGHT = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    """One sandbox with room for a loaded machine."""
    return Sandbox(Limits(wall_s=20))


@pytest.mark.parametrize("tests", [TESTS, ["assert add(2, 2) == 4"]], ids=["pytest", "asserts"])
def test_a_lone_surrogate_in_the_code_is_a_rejection(
    sandbox: Sandbox, tests: str | list[str]
) -> None:
    """Code that cannot be written as UTF-8 fails, naming where."""
    verdict = verdict_of(passes_tests(tests, sandbox=sandbox), RIGHT + "x = '\ud800'\n")
    assert not verdict.passed
    assert not verdict.fault
    assert "not valid UTF-8" in verdict.reason


IN_PROCESS_TRICKS = {
    "exits with pytest's 'no tests' status": "import os\nos._exit(5)\n",
    "writes a line nested 100,000 deep on the channel": (
        "import os, sys\nos.write(int(sys.argv[1]), b'[' * 100_000 + bytes([10]))\n" + RIGHT
    ),
}


@pytest.mark.parametrize("trick", sorted(IN_PROCESS_TRICKS))
def test_in_process_the_code_cannot_cause_a_fault(sandbox: Sandbox, trick: str) -> None:
    """Sharing the tests' process, the code could cause any fault: each is its rejection."""
    validator = passes_tests(TESTS, sandbox=sandbox, isolation="in-process", isolated_only=False)
    verdict = verdict_of(validator, IN_PROCESS_TRICKS[trick])
    assert not verdict.fault, verdict.reason
    assert verdict.self_reported


class _CodeSideBroken(Sandbox):
    """A sandbox whose runs of the answer's side fail to start, as a broken host's would."""

    async def run(
        self,
        files: Mapping[str, str],
        args: Sequence[str],
        *,
        channel: bool = False,
        peer: int | None = None,
        spawned: Callable[[], object] | None = None,
    ) -> SandboxResult:
        """Refuse the answer's side; run the tests' side."""
        if args[0] == "serve.py":
            raise OSError("no sandbox for the code")
        return await super().run(files, args, channel=channel, peer=peer, spawned=spawned)


@pytest.mark.parametrize("tests", [TESTS, ["assert add(2, 2) == 4"]], ids=["pytest", "asserts"])
def test_a_code_sandbox_that_cannot_start_is_a_fault_at_once(tests: str | list[str]) -> None:
    """Our failure stays a fault, raised when the tests end, not a timeout blamed on the code."""
    start = time.monotonic()
    verdict = verdict_of(passes_tests(tests, sandbox=_CodeSideBroken(Limits(wall_s=8))), RIGHT)
    assert verdict.fault
    assert "no sandbox for the code" in verdict.reason
    assert time.monotonic() - start < 6

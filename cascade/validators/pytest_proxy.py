"""Tests run apart from the answer: two sandboxes, joined by one socket.

The answer runs in a sandbox of its own (:data:`cascade.validators.harness.SERVER`): it runs
the setup and the answer, says which of the names the tests may call are functions there, then
answers calls. The tests (a pytest file, or the snippet runner) run in another sandbox, where
``solution`` is a proxy module (:data:`cascade.validators.harness.PROXY`) holding one function
per name served, and nothing else. The tests, their expected values and their outcomes never
enter the answer's process, which has no view of the other sandbox at all (its own pid
namespace, and its own uid as root); the verdict is read from the tests' channel, so it is not
self-reported.

Tests that need more than plain data from the answer (instances of its classes, say) fail
here; ``isolation = "in-process"`` runs them in one process, marked ``self_reported``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cascade.validators.harness import NAMES_FILE, PROXY, SERVER, WIRE, WIRE_FILE
from cascade.validators.sandbox import Sandbox, SandboxResult

__all__ = ["Apart", "run_apart"]


@dataclass(frozen=True, slots=True)
class Apart:
    """How the two sandboxes ended: the tests' (whose channel holds the verdict) and the code's."""

    tests: SandboxResult
    code: SandboxResult


async def run_apart(
    sandbox: Sandbox,
    solution: str,
    test_files: Mapping[str, str],
    argv: Sequence[str],
    names: Sequence[str],
    data: Mapping[str, str] | None = None,
) -> Apart:
    """Run the answer (``solution``) and the tests in two sandboxes joined by a socket.

    ``test_files`` and ``argv`` are the tests' sandbox's; ``{peer}`` in ``argv`` is its end of
    the socket; ``names`` are the names the tests may call; ``data`` files go to both. The
    code's sandbox ends when the tests' does.
    """
    shared = {**(data or {}), WIRE_FILE: WIRE, NAMES_FILE: json.dumps(list(names))}
    # The two runs live at the same time, so they take their uids from the pool together (each
    # taking its own could leave the pool held by halves of pairs, each waiting for the other).
    async with sandbox.reserve(2):
        return await _both(sandbox, solution, shared, test_files, argv)


async def _both(
    sandbox: Sandbox,
    solution: str,
    shared: Mapping[str, str],
    test_files: Mapping[str, str],
    argv: Sequence[str],
) -> Apart:
    tests_end, code_end = socket.socketpair()
    code = asyncio.ensure_future(
        sandbox.run(
            {**shared, "solution.py": solution, "serve.py": SERVER}, ["serve.py", "{peer}"],
            peer=code_end.fileno(), spawned=code_end.close,
        )
    )  # fmt: skip
    # A code run that fails to start lets the tests read the end of the stream, not wait.
    code.add_done_callback(lambda _: code_end.close())
    try:
        # Each end is closed here once its sandbox holds it: when the code's process dies, the
        # tests read the end of the stream at once, and when the tests end, the code does.
        files = {**shared, **test_files, "solution.py": PROXY}
        tests = await sandbox.run(
            files, list(argv), channel=True, peer=tests_end.fileno(), spawned=tests_end.close
        )
    finally:
        tests_end.close()
        code_end.close()
        ended = await asyncio.gather(code, return_exceptions=True)
    if isinstance(ended[0], BaseException):
        raise ended[0]  # the code's sandbox could not run: a fault of ours, not the answer's
    return Apart(tests, ended[0])

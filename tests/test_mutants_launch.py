"""Behaviour tests that kill ``cascade/validators/launch.py``'s surviving mutants (issue 34).

Each checks what the code inside a sandbox finds (Python's flags, its rlimits, its groups) or
what a run hands back (its output, bounded and decoded), started on demand and started ahead.
``tests/mutation_survivors.md`` lists the mutants no test can tell apart from the original.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from cascade.validators.sandbox import Limits, Sandbox, SandboxResult

LIMITS = Limits(wall_s=20, cpu_s=7, memory_mb=700, file_mb=5, processes=40)
WAYS = pytest.mark.parametrize(
    ("mode", "warm"),
    [("bwrap", 2), ("bwrap", 0), ("unshare", 0)],
    ids=["started ahead", "bwrap on demand", "unshare"],
)


def run(
    mode: str, warm: int, files: dict[str, str], args: list[str], *, channel: bool = False
) -> SandboxResult:
    """One run in a sandbox of ``mode`` (after the first run's check, when ``warm``)."""
    if mode == "unshare" and os.geteuid() != 0:
        pytest.skip("unshare needs root")

    async def go() -> SandboxResult:
        sandbox = Sandbox(LIMITS, mode=mode, warm=warm)
        try:
            await sandbox.run({}, ["-c", "pass"])
            await asyncio.sleep(0.2)  # started ahead, where there are any
            return await sandbox.run(files, args, channel=channel)
        finally:
            sandbox.close()

    ran = asyncio.run(go())
    assert ran.prestarted == (warm > 0)
    return ran


_FLOOD = """
import os, sys
os.write(1, b"\\xff" + b"o" * 70_000)
os.write(2, b"\\xfe" + b"e" * 70_000)
os.write(int(sys.argv[1]), b"\\xfd" + b"c" * 70_000)
"""


@WAYS
def test_output_is_kept_to_64000_bytes_and_bad_bytes_are_replaced(mode: str, warm: int) -> None:
    """The output keeps its first 64,000 bytes, the channel all; bad UTF-8 reads as U+FFFD."""
    ran = run(mode, warm, {"flood.py": _FLOOD}, ["flood.py", "{channel}"], channel=True)
    assert (ran.returncode, ran.timed_out) == (0, False)
    assert ran.stdout == "\ufffd" + "o" * 63_999
    assert ran.stderr == "\ufffd" + "e" * 63_999
    assert ran.channel == "\ufffd" + "c" * 70_000


@WAYS
def test_a_run_without_a_channel_hands_back_an_empty_one(mode: str, warm: int) -> None:
    """Nothing was asked for on a channel: the result's channel is empty; the run took its time."""
    ran = run(mode, warm, {}, ["-c", "print('x')"])
    assert (ran.returncode, ran.stdout, ran.stderr, ran.channel) == (0, "x\n", "", "")
    assert ran.timed_out is False
    assert 0 < ran.duration_s < 5


_INSIDE = """
import json, os, resource, sys
limits = {
    name: resource.getrlimit(getattr(resource, name))
    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NPROC")
}
print(json.dumps({
    "flags": [sys.flags.isolated, sys.flags.dont_write_bytecode, sys.flags.bytes_warning,
              sys.flags.interactive],
    "limits": limits, "uid": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
    "groups": os.getgroups(),
}))
"""


@WAYS
def test_the_code_runs_isolated_under_the_sandboxs_limits(mode: str, warm: int) -> None:
    """Isolated, no bytecode; rlimits as the Limits say; as root, a pool uid and gid, no groups."""
    ran = run(mode, warm, {"inside.py": _INSIDE}, ["inside.py"])
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""
    seen = json.loads(ran.stdout)
    assert seen["flags"] == [1, 1, 0, 0]
    limits = {name: tuple(pair) for name, pair in seen["limits"].items()}
    assert limits["RLIMIT_AS"] == (700 << 20,) * 2
    assert limits["RLIMIT_CPU"] == (7, 7)
    assert limits["RLIMIT_FSIZE"] == (5 << 20,) * 2
    assert limits["RLIMIT_CORE"] == (0, 0)
    if os.geteuid() == 0:
        assert limits["RLIMIT_NPROC"] == (40, 40)
        uid = seen["uid"][0]
        assert uid in range(64100, 64164)
        assert seen["uid"] == [uid] * 4
        assert seen["groups"] == []


_BESIDE = """
import json, os, sys
home = os.path.dirname(os.path.realpath(sys.executable))
print(json.dumps(sorted(os.listdir(os.path.dirname(os.path.dirname(home))))))
"""


@WAYS
def test_the_sandbox_shows_its_pythons_own_folder_and_nothing_beside_it(
    mode: str, warm: int
) -> None:
    """Only this Python's prefix is bound from the folder holding it, not its neighbours."""
    ran = run(mode, warm, {"beside.py": _BESIDE}, ["beside.py"])
    assert ran.returncode == 0, ran.stderr
    prefix = Path(os.path.realpath(sys.executable)).parents[1]
    if str(prefix).startswith(("/usr/", "/bin/", "/lib/")):
        pytest.skip("this Python lives in the system's folders, all of which are shown")
    assert json.loads(ran.stdout) == [prefix.name]

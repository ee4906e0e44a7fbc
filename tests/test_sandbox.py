"""passes_tests() in the sandbox: real attacks end as failing verdicts, and the host is unharmed.

Every attack runs under bubblewrap, and under the unshare fallback where we are root.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade import ConfigError, Verdict
from cascade.testing import verdict_of
from cascade.validators import passes_tests
from cascade.validators.confine import NOBODY
from cascade.validators.sandbox import Limits, Sandbox, SandboxWarning
from cascade.validators.uid_pool import UidPool
from tests.helpers import processes_of

IS_ROOT = os.geteuid() == 0
MODES = [
    "bwrap",
    pytest.param("unshare", marks=pytest.mark.skipif(not IS_ROOT, reason="unshare needs root")),
]
TIGHT = Limits(wall_s=4, cpu_s=2, memory_mb=512, file_mb=4, processes=32)
OWN_UIDS = range(64500 + os.getpid() % 50 * 16, 64516 + os.getpid() % 50 * 16)
"""The uids of these tests' sandboxes: apart from the host's pool, which other runs use, and
(most likely) from another run of these tests at the same time, whose processes would count."""
ADD = "```python\ndef add(a, b):\n    return a + b\n```"


def nobody_processes() -> int:
    """How many processes run as these tests' sandboxes' uids (nobody, or OWN_UIDS) right now."""
    return processes_of({NOBODY, *OWN_UIDS})


@pytest.fixture(params=MODES)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A sandbox in each mode, checked to leave no process of its uid behind."""
    before = nobody_processes() if IS_ROOT else 0
    sandbox = Sandbox(TIGHT, mode=request.param, uids=UidPool(OWN_UIDS))
    yield sandbox
    sandbox.close()  # the sandboxes started ahead of use, and never used
    if IS_ROOT:
        assert nobody_processes() <= before, "sandboxed processes outlived the run"


def attack(sandbox: Sandbox, candidate: str, *checks: str) -> Verdict:
    """Run ``candidate`` with assert ``checks`` that succeed only if the attack worked."""
    validator = passes_tests(list(checks) or ["pass"], sandbox=sandbox)
    return verdict_of(validator, textwrap.dedent(candidate))


def test_correct_code_passes(sandbox: Sandbox) -> None:
    """The sandbox does not get in the way of honest code, in either test form."""
    assert verdict_of(passes_tests(["assert add(2, 2) == 4"], sandbox=sandbox), ADD).passed
    pytest_file = "def test_add():\n    assert add(2, 3) == 5\n"
    assert verdict_of(passes_tests(pytest_file, sandbox=sandbox), ADD).passed


def test_a_failing_test_is_named_in_the_feedback(sandbox: Sandbox) -> None:
    """The failing snippet or test, and its assertion, reach the reason and the feedback."""
    verdict = verdict_of(passes_tests(["assert add(2, 2) == 5"], sandbox=sandbox), ADD)
    assert "assert add(2, 2) == 5" in verdict.feedback
    pytest_file = "def test_sum():\n    assert add(2, 2) == 5\n"
    verdict = verdict_of(passes_tests(pytest_file, sandbox=sandbox), ADD)
    assert "test_sum: assert 4 == 5" in verdict.reason


def test_a_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    """A fork bomb that swallows errors hits the process limit, then the clock, and fails."""
    start = time.monotonic()
    verdict = attack(
        sandbox,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
    )
    assert not verdict.passed
    assert "killed" in verdict.reason
    assert time.monotonic() - start < TIGHT.wall_s + 3


def test_an_infinite_loop_is_killed(sandbox: Sandbox) -> None:
    """A busy loop is stopped by the CPU limit or the wall clock."""
    start = time.monotonic()
    verdict = attack(sandbox, "def add(a, b):\n    while True:\n        pass\n", "add(1, 2)")
    assert not verdict.passed
    assert "killed" in verdict.reason
    assert time.monotonic() - start < TIGHT.wall_s + 3


def test_a_memory_hog_is_stopped(sandbox: Sandbox) -> None:
    """Allocating past the memory limit fails inside the sandbox."""
    verdict = attack(
        sandbox,
        "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n",
    )
    assert not verdict.passed
    assert "MemoryError" in verdict.reason or "killed" in verdict.reason


def test_a_huge_file_is_stopped(sandbox: Sandbox) -> None:
    """Writing past the file-size limit fails."""
    verdict = attack(sandbox, "open('big', 'wb').write(b'x' * (64 << 20))\n")
    assert not verdict.passed


def test_writes_outside_the_work_dir_fail(sandbox: Sandbox, tmp_path: Path) -> None:
    """Writes to the host's directories, /usr and / fail; /tmp inside is private to the run."""
    tmp_path.chmod(0o777)
    name = f"cascade-escape-{secrets.token_hex(4)}"
    candidate = "def write(path):\n    with open(path, 'w') as handle:\n        handle.write('x')\n"
    for target in [tmp_path / name, Path("/usr") / name, Path("/") / name, Path("/etc") / name]:
        verdict = attack(sandbox, candidate, f"write({str(target)!r})")
        assert not verdict.passed
        assert not target.exists(), f"the sandbox wrote {target} on the host"
    host_tmp = Path("/tmp") / name  # noqa: S108  # the host's /tmp must stay untouched
    assert attack(sandbox, candidate, f"write({str(host_tmp)!r})").passed
    assert not host_tmp.exists()


@pytest.mark.skipif(not IS_ROOT, reason="planting a canary in /root needs root")
def test_root_and_shadow_cannot_be_read(sandbox: Sandbox) -> None:
    """A secret in /root and the shadow file stay unreadable."""
    secret = secrets.token_hex(16)
    canary = Path("/root") / f".cascade-canary-{secrets.token_hex(4)}"
    canary.write_text(secret)
    try:
        for path in (str(canary), "/etc/shadow"):
            verdict = attack(sandbox, "", f"print(open({path!r}).read())")
            assert not verdict.passed
            assert secret not in verdict.reason + verdict.feedback
    finally:
        canary.unlink()


def test_the_network_is_unreachable(sandbox: Sandbox) -> None:
    """A connection to a server on the host's loopback never arrives."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(0.2)
        candidate = "import socket\n"
        check = f"socket.create_connection(('127.0.0.1', {port}), timeout=1).close()"
        assert not attack(sandbox, candidate, check).passed
        with pytest.raises(TimeoutError):
            server.accept()
    outside = "socket.create_connection(('1.1.1.1', 53), timeout=1).close()"
    assert not attack(sandbox, "import socket\n", outside).passed


def test_secrets_in_the_environment_are_not_visible(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API key in our environment reaches neither os.environ nor /proc inside."""
    secret = f"sk-canary-{secrets.token_hex(12)}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    checks = [
        "assert os.environ.get('OPENAI_API_KEY')",
        "assert 'sk-canary-' in open('/proc/1/environ').read()",
        "assert 'sk-canary-' in open('/proc/self/environ').read()",
    ]
    for check in checks:
        verdict = attack(sandbox, "import os\n", check)
        assert not verdict.passed
        assert secret not in verdict.reason + verdict.feedback


def test_proc_does_not_lead_out(sandbox: Sandbox, tmp_path: Path) -> None:
    """Host processes are invisible, and /proc/1/root leads back into the sandbox only."""
    host_pid = os.getpid()
    name = f"cascade-proc-escape-{secrets.token_hex(4)}"
    checks = [
        f"assert os.path.exists('/proc/{host_pid}/cmdline')",
        "assert len([p for p in os.listdir('/proc') if p.isdigit()]) > 10",
        "assert os.path.exists('/proc/1/root/etc/shadow')",
        f"open('/proc/1/root/{tmp_path}/{name}', 'w').write('x')",
        f"open('/proc/self/root/{tmp_path}/{name}', 'w').write('x')",
    ]
    for check in checks:
        assert not attack(sandbox, "import os\n", check).passed, check
    assert not (tmp_path / name).exists()


def test_a_hostile_conftest_beside_the_candidate_is_ignored(sandbox: Sandbox) -> None:
    """A conftest.py that forces every test to pass, and drops a marker, never loads."""
    hostile = textwrap.dedent(
        """
        import pytest
        open("conftest-ran", "w").write("x")

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            report = outcome.get_result()
            report.outcome = "passed"
        """
    )
    tests = "import os\n\ndef test_sum():\n    assert not os.path.exists('conftest-ran')\n"
    tests += "    assert add(2, 2) == 5\n"
    validator = passes_tests(tests, files={"conftest.py": hostile}, sandbox=sandbox)
    verdict = verdict_of(validator, ADD)
    assert not verdict.passed
    assert "test_sum: assert 4 == 5" in verdict.reason


def test_a_candidate_that_exits_early_does_not_pass(sandbox: Sandbox) -> None:
    """Exiting with status 0 before the tests run is a failure, not a pass."""
    verdict = attack(sandbox, "import os\nos._exit(0)\n", "assert False")
    assert not verdict.passed
    assert "without reporting" in verdict.reason


def test_the_fallback_is_loud(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without bubblewrap, the sandbox falls back to unshare only with a warning."""
    if not IS_ROOT:
        pytest.skip("the unshare fallback needs root")
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    with pytest.warns(SandboxWarning, match="bubblewrap"):
        assert Sandbox().mode == "unshare"


def test_no_sandbox_means_no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """With neither bubblewrap nor root, running generated code is refused outright."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match="never run unsandboxed"):
        _ = Sandbox().mode


def test_bad_file_names_are_refused() -> None:
    """Support files must be plain names inside the work dir."""
    with pytest.raises(ConfigError, match="plain, unreserved names"):
        passes_tests(["pass"], files={"../x.py": ""})


def test_a_sandbox_that_cannot_start_python_is_a_configuration_error() -> None:
    """A broken setup fails loudly, naming the problem, instead of failing every candidate."""
    broken = Sandbox(TIGHT, mode="bwrap")
    broken._python = "/nonexistent/python"  # simulate a Python bwrap cannot see
    verdict = verdict_of(passes_tests(["pass"], sandbox=broken), ADD)
    assert verdict.fault
    assert "sandbox cannot start Python" in verdict.reason

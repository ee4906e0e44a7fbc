"""Behaviour tests of ``confine.py`` that kill its surviving mutants (issue 34).

Which cgroup a sandbox gets is read from ``/proc/self/cgroup`` and ``/sys/fs/cgroup``: these tests
find the host's hierarchy on their own and insist that a cgroup is made where one can be, and
show the code a cgroup v2 hierarchy (a tree of files, bound over ``/sys/fs/cgroup`` in a mount
namespace of its own) on this cgroup v1 host. Which sandbox runs generated code is decided by
probing ``bwrap`` and ``unshare`` on ``PATH``: stand-ins that fail tell what a user reads when
neither works.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade.errors import ConfigError
from cascade.validators.confine import Cgroup, SandboxWarning, choose_mode, describe, processes_of

IS_ROOT = os.geteuid() == 0
_CGROUP = Path("/sys/fs/cgroup")
_FALLBACK = (
    "bubblewrap is installed but cannot create namespaces here: running generated code under"
    " the weaker unshare + rlimits sandbox. Install bubblewrap (apt-get install bubblewrap) for"
    " the full sandbox."
)
_PROBE = """
import ctypes, json, sys
if sys.argv[1:]:  # a stand-in for /proc/self/cgroup, bound over it (in a mount namespace)
    ctypes.CDLL(None).mount(sys.argv[1].encode(), b"/proc/self/cgroup", None, 4096, None)
from cascade.validators.confine import Cgroup, describe
said = {"describe": describe()}
try:
    cgroup = Cgroup("run", 7, 100)
except OSError as error:
    said["refused"] = str(error)
else:
    said["procs"], said["version"] = cgroup.procs, cgroup.version
print(json.dumps(said))
"""
"""Run in a child: what ``describe`` says there, and the cgroup ``run`` it makes, if any."""


def own_cgroups() -> dict[str, str]:
    """The cgroup path of this process per v1 controller, as the kernel lists it."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        own.update(dict.fromkeys(names.split(","), path))
    return own


def python_child(prefix: list[str], script: str, *args: str) -> str:
    """What ``script`` prints, run by this Python (and this ``cascade``) after ``prefix``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(  # noqa: S603  # fixed argv
        [*prefix, sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd="/",
        env=env,
    )
    return done.stdout


def probe(*prefix: str, own: Path | None = None) -> dict[str, object]:
    """What :data:`_PROBE` says, run in a child after ``prefix`` (a mount namespace, a uid).

    ``own`` stands in for the child's ``/proc/self/cgroup`` (``prefix`` must unshare mounts).
    """
    said: dict[str, object] = json.loads(
        python_child(list(prefix), _PROBE, *([str(own)] if own else []))
    )
    return said


def joined(procs: list[Path], *command: str) -> list[str]:
    """``command`` run by a child that first joins the cgroups of these ``cgroup.procs`` files."""
    joins = "".join(f'echo $$ > "{p}" && ' for p in procs)
    return ["sh", "-c", joins + 'exec "$@"', "sh", *command]


def in_fake_v2(tree: Path, *before: str, read_only: bool = False) -> dict[str, object]:
    """What :data:`_PROBE` says with ``tree`` bound over ``/sys/fs/cgroup``, as a cgroup v2 root."""
    bind = 'mount --bind "$0" /sys/fs/cgroup && '
    if read_only:
        bind += "mount -o remount,bind,ro /sys/fs/cgroup && "
    mount = ["unshare", "--mount", "--", "sh", "-c", bind + 'exec "$@"']
    return probe(*before, *mount, str(tree))


@pytest.mark.skipif(not IS_ROOT, reason="a cgroup is made as root only")
def test_a_cgroup_is_made_in_each_controllers_own_hierarchy_where_v1_is_writable() -> None:
    """On a v1 host whose pids and memory folders are writable, each run gets a cgroup in both."""
    own = own_cgroups()
    if (_CGROUP / "cgroup.controllers").exists() or not {"pids", "memory"} <= own.keys():
        pytest.skip("not a cgroup v1 host with pids and memory")
    folders = {c: _CGROUP / c / own[c].lstrip("/") for c in ("pids", "memory")}
    if not all(os.access(folder, os.W_OK) for folder in folders.values()):
        pytest.skip("the v1 cgroup folders are not writable here")
    name = f"cascade-test-{secrets.token_hex(6)}"
    cgroup = Cgroup(name, 7, 100)
    try:
        assert cgroup.version == 1
        made = {c: folder / name for c, folder in folders.items()}
        assert sorted(cgroup.procs) == sorted(str(f / "cgroup.procs") for f in made.values())
        assert (made["pids"] / "pids.max").read_text().strip() == "7"
        assert int((made["memory"] / "memory.limit_in_bytes").read_text()) == 100 << 20
        assert "a cgroup v1 per sandbox (pids.max, memory)" in describe()
    finally:
        cgroup.remove()
    assert not any(folder.exists() for folder in made.values())


def fake_v2(root: Path, controllers: str, subtree: str | None = "") -> Path:
    """A cgroup v2 root as the kernel shows it: controllers and (unless None) subtree_control."""
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    if subtree is not None:
        (root / "cgroup.subtree_control").write_text(subtree)
    return root


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root, unshare")
@pytest.mark.parametrize(
    ("controllers", "enabled"),
    [
        ("cpuset cpu io memory hugetlb pids rdma", ""),
        ("memory pids", ""),
        ("pids memory", "memory pids"),
    ],
)
def test_on_cgroup_v2_a_run_gets_one_cgroup_with_pids_memory_and_no_swap(
    tmp_path: Path, controllers: str, enabled: str
) -> None:
    """Under a v2 root with pids and memory, a run's cgroup sits below it with all three limits."""
    tree = fake_v2(tmp_path / "cgroup", controllers, enabled)
    said = in_fake_v2(tree)
    assert said["version"] == 2
    assert said["procs"] == ["/sys/fs/cgroup/run/cgroup.procs"]
    assert (tree / "run" / "pids.max").read_text() == "7"
    assert (tree / "run" / "memory.max").read_text() == str(100 << 20)
    assert (tree / "run" / "memory.swap.max").read_text() == "0"
    if not enabled:  # the kernel's syntax to hand both controllers down to the children
        assert set((tree / "cgroup.subtree_control").read_text().split()) == {"+pids", "+memory"}
    assert str(said["describe"]).endswith("; a cgroup v2 per sandbox (pids.max, memory)")


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root, unshare")
@pytest.mark.parametrize(
    ("controllers", "subtree"),
    [("cpu io memory", ""), ("cpu io pids", ""), ("", ""), ("memory pids", None)],
    ids=["no pids", "no memory", "none", "subtree_control unreadable"],
)
def test_on_cgroup_v2_without_pids_and_memory_no_cgroup_is_made(
    tmp_path: Path, controllers: str, subtree: str | None
) -> None:
    """A v2 root lacking a controller (or its subtree control) gives no cgroup, and says so."""
    tree = fake_v2(tmp_path / "cgroup", controllers, subtree)
    said = in_fake_v2(tree)
    assert said["refused"] == "no writable cgroup hierarchy with pids and memory"
    assert str(said["describe"]).endswith("; no writable cgroup: memory is capped per process only")
    assert sorted(p.name for p in tree.iterdir()) == sorted(
        ["cgroup.controllers", *(["cgroup.subtree_control"] if subtree is not None else [])]
    )


@pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None, reason="needs root, setpriv")
def test_unprivileged_there_is_no_cgroup_and_the_uid_is_shared() -> None:
    """Run as another uid than root, the sandbox gets no cgroup, and ``describe`` says why."""
    said = probe("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    assert said["refused"] == "no writable cgroup hierarchy with pids and memory"
    assert said["describe"] == (
        "user namespaces refused (seccomp); "
        "unprivileged: one uid shared with the caller's processes"
    )


@pytest.mark.skipif(not IS_ROOT, reason="starts a process as another uid")
def test_processes_of_counts_exactly_the_processes_a_uid_runs() -> None:
    """A uid that runs one process is counted one, and none once it has ended."""
    sleeper = subprocess.Popen(["sleep", "30"], user=64097)  # noqa: S607  # fixed argv
    try:
        assert processes_of(64097) == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    assert processes_of(64097) == 0


def stand_in(folder: Path, name: str, script: str) -> Path:
    """An executable ``name`` in ``folder`` that runs ``script`` (a body of ``sh``)."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def path_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that is all of ``PATH``: what the probes find is what a test puts there."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


_BROKEN_BWRAP = "echo bwrap-noise; echo bwrap-noise >&2; exit 1"


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root, unshare")
def test_a_bubblewrap_that_fails_falls_back_to_unshare_loudly_and_quietly_probed(
    path_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """As root, a bwrap that cannot make namespaces gives unshare, a warning, and no probe noise."""
    unshare = shutil.which("unshare", path=os.defpath)
    assert unshare is not None
    stand_in(path_dir, "bwrap", _BROKEN_BWRAP)
    (path_dir / "unshare").symlink_to(unshare)
    with pytest.warns(SandboxWarning) as caught:
        assert choose_mode() == "unshare"
    assert [str(w.message) for w in caught] == [_FALLBACK]
    out, err = capfd.readouterr()
    assert "bwrap-noise" not in out + err


@pytest.mark.parametrize(
    ("bwrap", "unshare", "root", "problems"),
    [
        (
            _BROKEN_BWRAP,
            "exit 1",
            True,
            "bubblewrap is installed but cannot create namespaces here; the unshare fallback"
            " needs root and a working unshare",
        ),
        (
            "\x00\x01 not a program",
            None,
            True,
            "bubblewrap is installed but cannot create namespaces here; the unshare fallback"
            " needs root and a working unshare",
        ),
        (
            None,
            "exit 0",
            False,
            "bubblewrap (bwrap) is not installed; the unshare fallback needs root and a working"
            " unshare",
        ),
    ],
    ids=["both fail", "bwrap cannot be run, no unshare", "no bwrap, not root"],
)
def test_with_no_working_sandbox_generated_code_is_refused_saying_why(
    path_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    bwrap: str | None,
    unshare: str | None,
    root: bool,
    problems: str,
) -> None:
    """Neither sandbox working, the refusal lists each problem and the fix."""
    if bwrap is not None:
        if bwrap.startswith("\x00"):
            (path_dir / "bwrap").write_text(bwrap)
            (path_dir / "bwrap").chmod(0o755)
        else:
            stand_in(path_dir, "bwrap", bwrap)
    if unshare is not None:
        stand_in(path_dir, "unshare", unshare)
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    with pytest.raises(ConfigError) as refused:
        choose_mode()
    assert str(refused.value) == (
        "no sandbox is available to run generated code, and it is never run unsandboxed: "
        + problems
        + ". Install bubblewrap (apt-get install bubblewrap)."
    )


@pytest.fixture
def new_cgroups() -> Iterator[list[Path]]:
    """Cgroup folders a test makes (each a child's own), removed afterwards with what is in them."""
    made: list[Path] = []
    yield made
    for folder in reversed(made):
        for inner in folder.iterdir():
            if inner.is_dir():
                inner.rmdir()
        folder.rmdir()


@pytest.mark.skipif(not IS_ROOT, reason="a cgroup is made as root only")
def test_a_run_in_a_cgroup_whose_name_holds_a_colon_gets_its_cgroup_inside_it(
    new_cgroups: list[Path],
) -> None:
    """The kernel lists cgroup paths after the second colon: a colon in a name is part of it."""
    own = own_cgroups()
    if (_CGROUP / "cgroup.controllers").exists() or not {"pids", "memory"} <= own.keys():
        pytest.skip("not a cgroup v1 host with pids and memory")
    name = f"cascade-test-{secrets.token_hex(4)}:x"
    for controller in ("pids", "memory"):
        new_cgroups.append(_CGROUP / controller / own[controller].lstrip("/") / name)
        new_cgroups[-1].mkdir()
    said = probe(*joined([f / "cgroup.procs" for f in new_cgroups]))
    assert said["version"] == 1
    assert sorted(map(str, said["procs"])) == sorted(  # type: ignore[call-overload]
        str(f / "run" / "cgroup.procs") for f in new_cgroups
    )


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root, unshare")
def test_on_cgroup_v2_a_run_gets_its_cgroup_below_its_own(
    tmp_path: Path, new_cgroups: list[Path]
) -> None:
    """A process in a v2 cgroup below the root makes its runs' cgroups in that one."""
    unified = _CGROUP / "unified"
    if not (unified / "cgroup.procs").exists():
        pytest.skip("no cgroup v2 hierarchy to join here")
    name = f"cascade-test-{secrets.token_hex(4)}"
    new_cgroups.append(unified / name)
    new_cgroups[-1].mkdir()
    tree = fake_v2(tmp_path / "cgroup", "memory pids")
    fake_v2(tree / name, "memory pids")
    said = in_fake_v2(tree, *joined([unified / name / "cgroup.procs"]))
    assert said["procs"] == [f"/sys/fs/cgroup/{name}/run/cgroup.procs"]
    assert (tree / name / "run" / "pids.max").read_text() == "7"
    assert set((tree / name / "cgroup.subtree_control").read_text().split()) == {"+pids", "+memory"}


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root, unshare")
def test_a_cgroup_hierarchy_mounted_read_only_gives_no_cgroup_and_says_so() -> None:
    """As in a container whose cgroup mounts are read-only: per-process limits, said plainly."""
    if (_CGROUP / "cgroup.controllers").exists() or not (_CGROUP / "pids").is_dir():
        pytest.skip("not a cgroup v1 host with a pids hierarchy")
    remount = 'mount -o remount,bind,ro /sys/fs/cgroup/pids && exec "$@"'
    said = probe("unshare", "--mount", "--", "sh", "-c", remount, "sh")
    assert said["refused"] == "no writable cgroup hierarchy with pids and memory"
    assert str(said["describe"]).endswith("; no writable cgroup: memory is capped per process only")


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root, unshare")
def test_a_cgroup_v2_mount_that_is_read_only_gives_no_cgroup_and_says_so(tmp_path: Path) -> None:
    """Its controllers handed down already, a read-only v2 root still promises no cgroup."""
    tree = fake_v2(tmp_path / "cgroup", "memory pids", "memory pids")
    said = in_fake_v2(tree, read_only=True)
    assert said["refused"] == "no writable cgroup hierarchy with pids and memory"
    assert str(said["describe"]).endswith("; no writable cgroup: memory is capped per process only")


@pytest.mark.skipif(not IS_ROOT, reason="a cgroup is made as root only")
def test_removing_a_cgroup_whose_first_folder_is_gone_still_removes_the_rest() -> None:
    """A folder someone else removed is skipped; the run's other folders are still removed."""
    try:
        cgroup = Cgroup(f"cascade-test-{secrets.token_hex(6)}", 7, 100)
    except OSError:
        pytest.skip("no writable cgroup with pids and memory here")
    folders = sorted(Path(p).parent for p in cgroup.procs)
    if len(folders) < 2:
        pytest.skip("one folder holds both controllers here (cgroup v2)")
    folders[0].rmdir()
    cgroup.remove()
    assert not any(folder.exists() for folder in folders)


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root, unshare")
@pytest.mark.parametrize(
    ("listed", "made"),
    [
        ("5:memory,pids:/jobs\n1:cpu,cpuacct:/\n0::/\n", True),
        ("4:memory:/jobs\n1:cpu,cpuacct:/\n0::/\n", False),
        ("6:pids:/jobs\n0::/\n", False),
    ],
    ids=["pids and memory in one hierarchy", "no pids", "no memory"],
)
def test_on_cgroup_v1_the_controllers_are_found_as_the_kernel_lists_them(
    tmp_path: Path, listed: str, made: bool
) -> None:
    """Controllers listed together are each found; with pids or memory missing, no cgroup."""
    tree = tmp_path / "cgroup"
    for controller in ("pids", "memory"):
        (tree / controller / "jobs").mkdir(parents=True)
    own = tmp_path / "own"
    own.write_text(listed)
    mount = 'mount --bind "$0" /sys/fs/cgroup && exec "$@"'
    said = probe("unshare", "--mount", "--", "sh", "-c", mount, str(tree), own=own)
    if made:
        assert said["version"] == 1
        assert sorted(map(str, said["procs"])) == [  # type: ignore[call-overload]
            "/sys/fs/cgroup/memory/jobs/run/cgroup.procs",
            "/sys/fs/cgroup/pids/jobs/run/cgroup.procs",
        ]
        assert (tree / "pids" / "jobs" / "run" / "pids.max").read_text() == "7"
    else:
        assert said["refused"] == "no writable cgroup hierarchy with pids and memory"

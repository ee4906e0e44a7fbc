"""Every Python example in the README runs exactly as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.cli import main
from cascade.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)


def test_the_readme_has_examples() -> None:
    """The README shows Python, so this test checks something."""
    assert len(BLOCKS) >= 2


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside the repo")
@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_example_runs(number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example runs from a checkout with ``shared/`` beside it, without a key or network."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    os.symlink(SHARED, tmp_path / "shared")
    os.symlink(ROOT / "examples", checkout / "examples")  # the shipped samples, read only
    monkeypatch.chdir(checkout)
    monkeypatch.setattr(sys, "path", list(sys.path))  # an example may add its own folder
    exec(compile(BLOCKS[number], f"README.md example {number + 1}", "exec"), {})  # noqa: S102


TOML = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
COMMANDS = [
    (
        line.partition("  #")[0].removeprefix(".venv/bin/").split(),
        int(status.group(1)) if (status := re.search(r"# exit status (\d)", line)) else 0,
    )
    for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    for line in block.splitlines()
    if line.startswith((".venv/bin/cascade ", ".venv/bin/python examples/"))
    and " bench " not in f" {line} "
]
"""The README's commands: ``cascade`` ones run through :func:`main`, example scripts as such."""


def test_the_readme_policies_are_valid(tmp_path: Path) -> None:
    """The whole policies shown in the README load, with the shipped schema beside them."""
    whole = [text for text in TOML if text.startswith("task_type")]
    assert len(whole) >= 2
    shutil.copytree(ROOT / "policies" / "schemas", tmp_path / "schemas")
    kinds = []
    for number, text in enumerate(whole):
        (tmp_path / f"readme{number}.toml").write_text(text)
        kinds.append(load_policy(tmp_path / f"readme{number}.toml").task_type)
    assert [kind for kind in kinds if kind in ("extraction", "nightly")] == [
        "extraction",
        "nightly",
    ]
    assert "contact_http" in kinds


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside the repo")
@pytest.mark.timeout(900)  # every command of the README in turn: a few minutes on 2 cores
def test_the_readme_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy, run and report commands shown in the README run as written, in order."""
    assert len(COMMANDS) >= 3
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    os.symlink(SHARED, tmp_path / "shared")
    os.symlink(ROOT / "policies", checkout / "policies")
    os.symlink(ROOT / "examples", checkout / "examples")
    monkeypatch.chdir(checkout)
    for argv, status in COMMANDS:
        if argv[0] == "python":
            done = subprocess.run([sys.executable, *argv[1:]], check=False)  # noqa: S603
            assert done.returncode == status, argv
        else:
            assert main(argv[1:]) == status, argv

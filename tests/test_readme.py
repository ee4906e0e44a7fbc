"""Every Python example in the README runs exactly as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

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
    monkeypatch.chdir(checkout)
    exec(compile(BLOCKS[number], f"README.md example {number + 1}", "exec"), {})  # noqa: S102

"""Which sandbox runs generated code: bubblewrap wherever it works, never the weaker fallback."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cascade.validators.confine import choose_mode


def test_bubblewrap_is_chosen_wherever_it_can_make_its_namespaces() -> None:
    """As root the unshare fallback also works here; choosing it would weaken every sandbox."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed here")
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-net", "--", "/bin/true"]
    done = subprocess.run(probe, capture_output=True, timeout=30, check=False)  # noqa: S603
    if done.returncode != 0:
        pytest.skip("bubblewrap cannot make namespaces here")
    assert choose_mode() == "bwrap"

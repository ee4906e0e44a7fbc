"""The public surface: a sorted, complete ``__all__``, a fast import, and the command line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import cascade
from cascade.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def test_all_is_sorted_and_complete() -> None:
    """Every public name is exported once, in sorted order, and each one exists."""
    assert cascade.__all__ == sorted(cascade.__all__)
    assert len(set(cascade.__all__)) == len(cascade.__all__)
    for name in cascade.__all__:
        assert hasattr(cascade, name), name
    public = {n for n in vars(cascade) if not n.startswith("_") and n[0].isupper()}
    public -= {"annotations"}
    assert public <= set(cascade.__all__)


@pytest.mark.parametrize(
    "code",
    ["import cascade", "import cascade.cli; cascade.cli.main(['--version'])"],
)
def test_importing_cascade_does_not_import_litellm(code: str) -> None:
    """Neither the package nor the CLI's load path pays for litellm's, Ray's or OTel's import."""
    probe = f"{code}\nimport sys\n" + "".join(
        f"assert {name!r} not in sys.modules, '{name} was imported'\n"
        for name in ("litellm", "ray", "opentelemetry")
    )
    result = subprocess.run(  # noqa: S603  # our own interpreter on our own code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_cascade_help_is_quick() -> None:
    """``cascade --help`` answers in well under a second."""
    started = time.perf_counter()
    result = subprocess.run(  # our own interpreter on our own code
        [sys.executable, "-m", "cascade.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "bench" in result.stdout
    assert time.perf_counter() - started < 2.0  # a loose bound; the benchmark measures it


def test_bench_rejects_an_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    """A ladder naming a model the dataset lacks is an error that lists the models it has."""
    if not (SHARED / "bfcl-simple").is_dir():
        pytest.skip("../shared/datasets is not beside the repo")
    assert main(["bench", str(SHARED / "bfcl-simple"), "--ladder", "gpt-5"]) == 2
    assert "unknown model(s) gpt-5" in capsys.readouterr().err


def test_bench_on_a_folder_that_is_not_a_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder without tasks.jsonl is named in the error."""
    assert main(["bench", str(tmp_path)]) == 2
    assert "has no tasks.jsonl" in capsys.readouterr().err


def test_importing_cascade_leaves_what_few_runs_need_for_later() -> None:
    """pydantic, multiprocessing and statistics load with the code that uses them."""
    later = ("pydantic", "multiprocessing", "statistics")
    probe = f"import cascade, sys\nprint([m for m in {later!r} if m in sys.modules])"
    result = subprocess.run(  # noqa: S603  # our own interpreter on our own code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

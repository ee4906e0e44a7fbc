"""Code validators: extract_code, compiles() and mypy_clean()."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cascade.testing import verdict_of
from cascade.validators import compiles, extract_code, mypy_clean

GOOD = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
BAD_TYPES = "```python\ndef add(a: int, b: int) -> str:\n    return a + b\n```"


@pytest.mark.parametrize(
    ("output", "code"),
    [
        ("```python\nx = 1\n```", "x = 1\n"),
        ("Text\n```py\nx = 1\n```\nmore\n```\ny = 2\n```", "x = 1\n"),
        ("```\ny = 2\n```", "y = 2\n"),
        ("x = 1", "x = 1"),
        ("```python\nx = 1\n", "x = 1\n"),
        ("```bash\nls\n```\n```python\nz = 3\n```", "z = 3\n"),
    ],
    ids=["python-fence", "first-python", "bare-fence", "no-fence", "unclosed", "skips-bash"],
)
def test_extract_code(output: str, code: str) -> None:
    """The Python block is found in the shapes models write."""
    assert extract_code(output) == code


def test_compiles_passes_valid_code() -> None:
    """Valid code passes, and the code is the parsed value."""
    verdict = verdict_of(compiles(), GOOD)
    assert verdict.passed
    assert verdict.value.startswith("def add")


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("```python\ndef f(:\n    pass\n```", "syntax error at line 1"),
        ("```python\nx = '\x00'\n```", "null bytes"),
        ("```python\n\n```", "no code"),
        ("x = 1\n" * 20_000, "over the limit"),
    ],
    ids=["syntax", "null-byte", "empty", "too-long"],
)
def test_compiles_names_the_problem(output: str, reason: str) -> None:
    """Broken, empty or oversized code fails with a reason and feedback."""
    verdict = verdict_of(compiles(), output)
    assert not verdict.passed
    assert reason in verdict.reason
    assert verdict.feedback


@pytest.mark.parametrize("code", ["(" * 5000 + ")" * 5000, "-" * 90_000 + "1", "[" * 99_000])
def test_compiles_is_fast_on_hostile_code(code: str) -> None:
    """Deep nesting within the size cap fails quickly instead of hanging the worker."""
    start = time.perf_counter()
    assert not verdict_of(compiles(), code).passed
    assert time.perf_counter() - start < 1.0


def test_mypy_clean_passes_typed_code() -> None:
    """Well-typed code passes under strict mypy."""
    assert verdict_of(mypy_clean(), GOOD).passed


def test_mypy_clean_reports_type_errors_with_lines() -> None:
    """A type error fails, naming the line and the error code, in the feedback too."""
    verdict = verdict_of(mypy_clean(), BAD_TYPES)
    assert not verdict.passed
    assert "candidate.py:2: error: Incompatible return value type" in verdict.reason
    assert "[return-value]" in verdict.feedback


def test_mypy_clean_strictness_is_a_choice() -> None:
    """Untyped code fails strict checking and passes the default checks."""
    untyped = "def add(a, b):\n    return a + b\n"
    assert not verdict_of(mypy_clean(), untyped).passed
    assert verdict_of(mypy_clean(strict=False), untyped).passed


@pytest.mark.parametrize(
    "hatch",
    [
        "# type: ignore\n",
        "# mypy: ignore-errors\n",
        "x: int = 'a'  # type: ignore[assignment]\n",
        "#type:ignore\n",
    ],
)
def test_mypy_clean_refuses_comments_that_switch_it_off(hatch: str) -> None:
    """``# type: ignore`` and ``# mypy:`` comments cannot hide errors."""
    verdict = verdict_of(mypy_clean(), f"```python\n{hatch}x: int = 'a'\n```")
    assert not verdict.passed
    assert "switches type checking off" in verdict.reason


def test_a_hostile_mypy_config_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Config files in the working directory, naming a plugin and relaxing checks, are ignored."""
    marker = tmp_path / "plugin-ran"
    plugin = tmp_path / "evil_plugin.py"
    plugin.write_text(
        f"open({str(marker)!r}, 'w').write('x')\n"
        "from mypy.plugin import Plugin\n"
        "def plugin(version):\n    return Plugin\n"
    )
    relaxed = f"plugins = {plugin}\nignore_errors = True\nstrict = False\n"
    (tmp_path / "mypy.ini").write_text("[mypy]\n" + relaxed)
    (tmp_path / ".mypy.ini").write_text("[mypy]\n" + relaxed)
    (tmp_path / "setup.cfg").write_text("[mypy]\n" + relaxed)
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.mypy]\nplugins = ["{plugin}"]\nignore_errors = true\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MYPY_CONFIG_FILE_DIR", str(tmp_path))
    verdict = verdict_of(mypy_clean(), BAD_TYPES)
    assert not verdict.passed
    assert not marker.exists(), "a plugin named by a config file ran"


def test_mypy_clean_is_warm_after_the_first_check() -> None:
    """After the first check, each check takes tens of milliseconds, not a second."""
    validator = mypy_clean()
    verdict_of(validator, GOOD)
    start = time.perf_counter()
    for _ in range(5):
        verdict_of(validator, BAD_TYPES)
    assert (time.perf_counter() - start) / 5 < 0.3

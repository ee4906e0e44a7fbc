"""``mypy_clean()``: the generated code type-checks, through mypy's API, kept warm.

mypy runs in this process with a config file we write (so no ``mypy.ini``, ``setup.cfg`` or
``pyproject.toml`` near the candidate or in the working directory is read, and no plugin ever
loads) and an on-disk cache, so that a check costs tens of milliseconds after the first. The
candidate may not switch checking off with ``# type: ignore`` or ``# mypy:`` comments.

>>> mypy_clean()
mypy_clean()
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import tempfile
import threading
import tokenize
import weakref
from pathlib import Path

from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.code import MAX_CODE_CHARS, extract_code, refuse_code

__all__ = ["mypy_clean"]

_ESCAPES = re.compile(r"#\s*(type:\s*ignore|mypy:)", re.IGNORECASE)
_MAX_LISTED = 5
_FLAGS = ["--no-error-summary", "--show-error-codes", "--hide-error-context", "--no-color-output"]


def _escape_hatch(code: str) -> str | None:
    """The first comment that would switch mypy off for part of the code, if any."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        comments = [line for line in code.splitlines() if "#" in line]
    else:
        comments = [t.string for t in tokens if t.type == tokenize.COMMENT]
    for comment in comments:
        if match := _ESCAPES.search(comment):
            return match.group(0)
    return None


class _MypyClean:
    cost_class = CostClass.PROCESS

    def __init__(self, strict: bool, allow_ignores: bool, max_chars: int) -> None:
        self._strict = strict
        self._allow_ignores = allow_ignores
        self._max_chars = max_chars
        self._lock = threading.Lock()
        self._home: Path | None = None

    def __repr__(self) -> str:
        args = [f"strict={self._strict}"] if not self._strict else []
        args += ["allow_ignores=True"] if self._allow_ignores else []
        return f"mypy_clean({', '.join(args)})"

    def _config(self) -> Path:
        """Our trusted config and cache, made once and removed with the validator."""
        if self._home is None:
            home = Path(tempfile.mkdtemp(prefix="cascade-mypy-"))
            weakref.finalize(self, shutil.rmtree, home, ignore_errors=True)
            lines = [
                "[mypy]",
                f"cache_dir = {home / 'cache'}",
                f"strict = {self._strict}",
                "ignore_missing_imports = True",
                "no_site_packages = True",
                "follow_imports = silent",
                "warn_unused_configs = False",
            ]
            (home / "mypy.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
            self._home = home
        return self._home / "mypy.ini"

    async def __call__(self, attempt: Attempt) -> Verdict:
        code = extract_code(attempt.output)
        if (refused := refuse_code(code, self._max_chars)) is not None:
            return refused
        if not self._allow_ignores and (hatch := _escape_hatch(code)):
            return Verdict(
                False,
                reason=f"the code switches type checking off with {hatch!r}",
                feedback=f"Remove the {hatch!r} comment and fix the types it hides.",
            )
        return await asyncio.to_thread(self._check, code)

    def _check(self, code: str) -> Verdict:
        # Imported here: mypy is only paid for by users of this validator.
        from mypy import api  # noqa: PLC0415

        with self._lock, tempfile.TemporaryDirectory(prefix="cascade-candidate-") as directory:
            path = Path(directory) / "candidate.py"
            path.write_text(code, encoding="utf-8")
            stdout, stderr, status = api.run(
                ["--config-file", str(self._config()), *_FLAGS, str(path)]
            )
        if status == 0:
            return Verdict(True, value=code)
        errors = [
            line.replace(str(path), "candidate.py")
            for line in stdout.splitlines()
            if ": error:" in line
        ]
        if status != 1 or not errors:
            detail = (stderr or stdout).strip().splitlines()
            return Verdict(
                False,
                reason=f"mypy failed to run (status {status}): {detail[-1] if detail else ''}",
                fault=True,
            )
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return Verdict(
            False,
            reason=f"mypy: {errors[0]}{more}",
            feedback="Fix these type errors:\n" + "\n".join(errors[:_MAX_LISTED]),
        )


def mypy_clean(
    *, strict: bool = True, allow_ignores: bool = False, max_chars: int = MAX_CODE_CHARS
) -> _MypyClean:
    """Pass when mypy finds no error in the code of the output; the result is the code.

    Imports mypy cannot find are treated as ``Any``. With ``allow_ignores=False`` (the default)
    the code may not silence mypy with ``# type: ignore`` or ``# mypy:`` comments.
    """
    return _MypyClean(strict, allow_ignores, max_chars)

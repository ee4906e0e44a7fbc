r"""Generated code: find it in the output, and ``compiles()``.

>>> extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone.")
'def f():\n    return 1\n'
>>> compiles()
compiles()
"""

from __future__ import annotations

import re

from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass

__all__ = ["MAX_CODE_CHARS", "compiles", "extract_code"]

MAX_CODE_CHARS = 100_000
"""Code longer than this is refused unread: a deep expression makes the compiler crawl."""

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3"}


def extract_code(output: str) -> str:
    """The Python code in ``output``: its first ``python`` fence, else its first fence, else all.

    An unclosed fence at the end, as a model cut off by its token limit writes, counts as well.
    """
    blocks = _FENCE.findall(output)
    for tag, body in blocks:
        if tag.lower() in _PYTHON_TAGS:
            return str(body)
    if blocks:
        return str(blocks[0][1])
    unclosed = re.match(r"\s*```[ \t]*[\w+-]*[^\n]*\n(.*)\Z", output, re.DOTALL)
    return unclosed.group(1) if unclosed else output


def refuse_code(code: str, max_chars: int) -> Verdict | None:
    """A failing verdict for code too long to read, or ``None``."""
    if len(code) > max_chars:
        return Verdict(
            False,
            reason=f"code is {len(code)} characters, over the limit of {max_chars}",
            feedback=f"Keep the code under {max_chars} characters.",
        )
    if not code.strip():
        return Verdict(False, reason="no code in the output", feedback=_FENCE_HINT)
    return None


_FENCE_HINT = "Answer with the code in one ```python fenced block."


class _Compiles:
    cost_class = CostClass.CHEAP

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars

    def __repr__(self) -> str:
        extra = f"max_chars={self._max_chars}" if self._max_chars != MAX_CODE_CHARS else ""
        return f"compiles({extra})"

    def __call__(self, attempt: Attempt) -> Verdict:
        code = extract_code(attempt.output)
        if (refused := refuse_code(code, self._max_chars)) is not None:
            return refused
        try:
            compile(code, "candidate.py", "exec", dont_inherit=True)
        except SyntaxError as exc:
            where = f" at line {exc.lineno}" if exc.lineno else ""
            problem = f"syntax error{where}: {exc.msg}"
        except (ValueError, RecursionError, MemoryError) as exc:
            problem = f"the code cannot be compiled: {type(exc).__name__}: {exc}"
        else:
            return Verdict(True, value=code)
        return Verdict(False, reason=problem, feedback=f"Fix the {problem}. {_FENCE_HINT}")


def compiles(*, max_chars: int = MAX_CODE_CHARS) -> _Compiles:
    """Pass when the code in the output compiles as Python; the result is the code."""
    return _Compiles(max_chars)

"""Find the one JSON value in a model's output: bare, fenced, or surrounded by prose.

Where the output holds several different JSON values, no guess is made: the answer is
ambiguous, and the reason says so. Fenced blocks win over JSON scattered through prose, and
objects win over arrays, so that prose such as "see [1]" is not taken for the answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_OUTPUT_CHARS", "extract_json"]

MAX_OUTPUT_CHARS = 1_000_000
"""Outputs longer than this are rejected unread: parsing them is a denial of service."""

_MAX_FAILED_STARTS = 64
_MAX_VALUES = 1000
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_START = re.compile(r"[\[{]")
_DECODER = json.JSONDecoder()


def extract_json(text: str, *, max_chars: int = MAX_OUTPUT_CHARS) -> tuple[Any, str | None]:
    r"""Return ``(value, None)`` for the JSON value in ``text``, or ``(None, reason)``.

    >>> extract_json('Sure! ```json\n{"a": 1}\n``` Anything else?')
    ({'a': 1}, None)
    >>> extract_json("no json here")
    (None, 'no JSON object or array found in the output')
    >>> extract_json('{"a": 1} or maybe {"a": 2}')
    (None, 'the output holds several different JSON values; expected exactly one')
    """
    if len(text) > max_chars:
        return None, f"output is {len(text)} characters, over the limit of {max_chars}"
    stripped = text.strip()
    if not stripped:
        return None, "output is empty; expected JSON"
    try:
        return json.loads(stripped), None
    except (ValueError, RecursionError):
        pass
    fenced = [v for block in _FENCE.findall(text) for v in _values_in(block.strip())]
    return _one(fenced or _values_in(text))


def _values_in(text: str) -> list[Any]:
    """Every top-level JSON object or array in ``text``, scanning left to right."""
    values: list[Any] = []
    failed = 0
    position = 0
    while (
        failed <= _MAX_FAILED_STARTS
        and len(values) < _MAX_VALUES
        and (match := _START.search(text, position))
    ):
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            failed += 1
            position = match.start() + 1
            continue
        values.append(value)
        position = end
    return values


def _one(values: list[Any]) -> tuple[Any, str | None]:
    objects = [v for v in values if isinstance(v, dict)]
    candidates = objects or values
    if not candidates:
        return None, "no JSON object or array found in the output"
    first = candidates[0]
    if any(value != first for value in candidates[1:]):
        return None, "the output holds several different JSON values; expected exactly one"
    return first, None

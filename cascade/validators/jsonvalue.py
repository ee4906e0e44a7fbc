"""Find the JSON value in a model's output: bare, fenced, or surrounded by prose."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_OUTPUT_CHARS", "extract_json"]

MAX_OUTPUT_CHARS = 1_000_000
"""Outputs longer than this are rejected unread: parsing them is a denial of service."""

_MAX_CANDIDATES = 64
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def extract_json(text: str, *, max_chars: int = MAX_OUTPUT_CHARS) -> tuple[Any, str | None]:
    r"""Return ``(value, None)`` for the first JSON value in ``text``, or ``(None, reason)``.

    >>> extract_json('Sure! ```json\n{"a": 1}\n``` Anything else?')
    ({'a': 1}, None)
    >>> extract_json("no json here")
    (None, 'no JSON object or array found in the output')
    """
    if len(text) > max_chars:
        return None, f"output is {len(text)} characters, over the limit of {max_chars}"
    stripped = text.strip()
    if not stripped:
        return None, "output is empty; expected JSON"
    for candidate in (stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))):
        try:
            return json.loads(candidate), None
        except (ValueError, RecursionError):
            continue
    return _scan(text)


def _scan(text: str) -> tuple[Any, str | None]:
    """Try to decode at each of the first few ``{`` or ``[``, the way prose embeds JSON."""
    tried = 0
    for match in re.finditer(r"[\[{]", text):
        tried += 1
        if tried > _MAX_CANDIDATES:
            break
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        return value, None
    return None, "no JSON object or array found in the output"

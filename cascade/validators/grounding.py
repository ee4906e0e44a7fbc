"""``grounded(...)``: every extracted value really occurs in the task's input.

This is the cheap check that catches a small model inventing names, emails and numbers. Text is
normalised before it is compared (Unicode NFKC, whitespace runs collapsed, case folded); each of
these can be turned off. Numbers may be written differently (``1,234.50`` in the input and
``1234.5`` in the answer) and dates too (``5 March 2024`` and ``2024-03-05``).

>>> grounded()
grounded()
>>> grounded(["name", "email"], ignore_case=False)
grounded(['name', 'email'], ignore_case=False)
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.dates import Day, dates_in, whole_date
from cascade.validators.jsonvalue import extract_json
from cascade.validators.schema import json_path

__all__ = ["grounded"]

_WHITESPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")
_EUROPEAN = re.compile(
    r"(?<![\w.,])(?P<amount>[-+]?(?:(?P<grouped>\d{1,3}(?:\.\d{3})+)|\d+),\d{2})(?![\d,.])"
    r"(?P<currency>\s?(?:€|EUR|CHF|DKK|NOK|SEK|PLN|CZK|HUF)\b)?",
    re.IGNORECASE,
)
"""An amount written the European way, with a decimal comma and two decimals: ``1.249,00``.

Read so only with a thousands point (``1.249,00``) or a currency after it (``249,00 EUR``):
``5,10`` in a list of numbers is two numbers. Where it is read so, its digits are not also read
the other way (``1.249`` and ``00``)."""
_MAX_LISTED = 3

Leaf = tuple[tuple[str | int, ...], Any]
"""A value in the parsed output, with its path."""


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "")).normalize()
    except InvalidOperation:
        return None


_DEFAULTS = {"ignore_case": True, "collapse_whitespace": True, "numbers": True, "dates": True}


class _Grounded:
    cost_class = CostClass.CHEAP

    def __init__(
        self, fields: tuple[str, ...] | None, source: str | None, options: dict[str, bool]
    ) -> None:
        self._fields = fields
        self._source = source
        self._options = options

    def __repr__(self) -> str:
        args = [repr(list(self._fields))] if self._fields is not None else []
        if self._source is not None:
            args.append(f"source={self._source!r}")
        args.extend(f"{k}={v}" for k, v in self._options.items() if v != _DEFAULTS[k])
        return f"grounded({', '.join(args)})"

    def _source_text(self, attempt: Attempt) -> str | None:
        task = attempt.task
        if self._source is not None:
            value = task.extra.get(self._source, task.meta.get(self._source))
            return value if isinstance(value, str) else None
        if task.input is not None:
            return task.input
        return "\n".join(m["content"] for m in task.messages or () if m["role"] != "assistant")

    def __call__(self, attempt: Attempt) -> Verdict:
        source = self._source_text(attempt)
        if source is None:
            return Verdict(False, reason=f"task has no text field {self._source!r} to ground in")
        value, problem = extract_json(attempt.output)
        if problem is not None:
            return Verdict(False, reason=problem, feedback="Answer with exactly one JSON value.")
        haystack = _Haystack(source, **self._options)
        missing = [(path, v) for path, v in self._leaves(value) if not haystack.holds(v)]
        if not missing:
            return Verdict(True)
        listed = ", ".join(f"{json_path(path)} = {v!r}" for path, v in missing[:_MAX_LISTED])
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        return Verdict(
            False,
            reason=f"not found in the input: {listed}{more}",
            feedback=f"These values do not occur in the input: {listed}{more}. Copy values "
            "exactly as the input writes them, and use null for anything it does not state.",
        )

    def _leaves(self, value: Any) -> Iterator[Leaf]:
        if self._fields is None:
            yield from _walk((), value)
            return
        for field in self._fields:
            for path, found in _select((), value, field.split(".")):
                yield from _walk(path, found)


class _Haystack:
    """The task's input, normalised once; its numbers and dates are read only when needed."""

    def __init__(
        self,
        source: str,
        *,
        ignore_case: bool,
        collapse_whitespace: bool,
        numbers: bool,
        dates: bool,
    ) -> None:
        self._source = source
        self._ignore_case = ignore_case
        self._collapse = collapse_whitespace
        self._check_numbers = numbers
        self._check_dates = dates
        self._text = self._normal(source)

    @functools.cached_property
    def _numbers(self) -> set[Decimal]:
        found: list[Decimal | None] = []
        taken: list[tuple[int, int]] = []
        for match in _EUROPEAN.finditer(self._source):
            if match.group("grouped") or match.group("currency"):
                amount = match.group("amount").replace(".", "").replace(",", ".")
                found.append(_decimal(amount))
                taken.append(match.span("amount"))
        for match in _NUMBER.finditer(self._source):
            if not any(start < match.end() and match.start() < end for start, end in taken):
                found.append(_decimal(match.group(0)))
        return {d for d in found if d is not None}

    @functools.cached_property
    def _dates(self) -> set[Day]:
        return dates_in(self._source)

    def _normal(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        if self._collapse:
            text = _WHITESPACE.sub(" ", text).strip()
        return text.casefold() if self._ignore_case else text

    def holds(self, value: Any) -> bool:
        """Whether ``value`` occurs in the input, after normalisation."""
        if isinstance(value, bool) or value is None:
            return True
        if isinstance(value, int | float):
            return not self._check_numbers or _decimal(repr(value)) in self._numbers
        text = str(value)
        normal = self._normal(text)
        if not normal or normal in self._text:
            return True
        if self._check_numbers and _NUMBER.fullmatch(text.strip()):
            return _decimal(text.strip()) in self._numbers
        if self._check_dates and (when := whole_date(text)):
            return bool(when & self._dates)
        return False


def _walk(path: tuple[str | int, ...], value: Any) -> Iterator[Leaf]:
    """Every scalar in ``value``, with its path; object keys are not values."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk((*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk((*path, index), item)
    else:
        yield path, value


def _select(path: tuple[str | int, ...], value: Any, parts: list[str]) -> Iterator[Leaf]:
    """The values at a dotted field path; ``*`` matches every item of a list or object."""
    if not parts:
        yield path, value
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, list):
        indices = range(len(value)) if head == "*" else [int(head)] if head.isdigit() else []
        for index in indices:
            if index < len(value):
                yield from _select((*path, index), value[index], rest)
    elif isinstance(value, dict):
        keys = list(value) if head == "*" else [head] if head in value else []
        for key in keys:
            yield from _select((*path, key), value[key], rest)


def grounded(
    fields: Sequence[str] | None = None,
    *,
    source: str | None = None,
    ignore_case: bool = True,
    collapse_whitespace: bool = True,
    numbers: bool = True,
    dates: bool = True,
) -> _Grounded:
    """Pass when every extracted value occurs in the task's input.

    ``fields`` names dotted paths to check (``"contact.email"``, ``"items.*.name"``); without
    it, every string and number in the output is checked. ``source`` names the task field that
    holds the text to ground in; by default it is the task's input, or its non-assistant
    messages. Missing fields and nulls are left to a schema to judge.
    """
    if isinstance(fields, str):
        fields = [fields]
    options = {
        "ignore_case": ignore_case,
        "collapse_whitespace": collapse_whitespace,
        "numbers": numbers,
        "dates": dates,
    }
    return _Grounded(tuple(fields) if fields is not None else None, source, options)

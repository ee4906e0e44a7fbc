"""Dates as people write them, read into ``(year, month, day)`` so that they can be compared.

A numeric date such as ``03/05/2024`` is ambiguous, so both readings are kept.

>>> sorted(dates_in("Signed on 5 March 2024, paid 2024-03-07."))
[(2024, 3, 5), (2024, 3, 7)]
>>> sorted(whole_date("03/05/24"))
[(2024, 3, 5), (2024, 5, 3)]
"""

from __future__ import annotations

import datetime
import re

__all__ = ["Day", "dates_in", "whole_date"]

Day = tuple[int, int, int]
"""A calendar day as ``(year, month, day)``."""

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_PATTERNS = [
    re.compile(r"\b(?P<year>\d{4})[-/.](?P<a>\d{1,2})[-/.](?P<b>\d{1,2})\b"),
    re.compile(r"\b(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<year>\d{2}|\d{4})\b"),
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.IGNORECASE),
]


def _day(year: int, month: int, day: int) -> Day | None:
    if year < 100:
        year += 2000
    try:
        datetime.date(year, month, day)
    except ValueError:
        return None
    return (year, month, day)


def _readings(match: re.Match[str], index: int) -> set[Day]:
    groups = match.groupdict()
    year = int(groups["year"])
    if index == 0:  # year first: always year-month-day
        found = {_day(year, int(groups["a"]), int(groups["b"]))}
    elif index == 1:  # ambiguous: day-month-year and month-day-year
        a, b = int(groups["a"]), int(groups["b"])
        found = {_day(year, b, a), _day(year, a, b)}
    else:
        found = {_day(year, _MONTHS[groups["month"].lower()], int(groups["day"]))}
    return {day for day in found if day is not None}


def dates_in(text: str) -> set[Day]:
    """Every date written in ``text``, each in all its plausible readings."""
    found: set[Day] = set()
    for index, pattern in enumerate(_PATTERNS):
        for match in pattern.finditer(text):
            found |= _readings(match, index)
    return found


def whole_date(text: str) -> set[Day]:
    """The readings of ``text`` when all of it is one date, else the empty set."""
    stripped = text.strip()
    for index, pattern in enumerate(_PATTERNS):
        match = pattern.fullmatch(stripped)
        if match:
            return _readings(match, index)
    return set()

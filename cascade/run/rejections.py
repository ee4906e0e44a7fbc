"""A tier's rejections, counted by check first, each check with its most frequent reasons.

Counting by check first keeps a report readable: counted by reason alone (each reason carries
the value it found), the top lines covered only a few of the escalations.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["rejection_lines", "rejections_by_check"]

_TOP_REASONS = 3
"""Reasons shown under each check that rejected answers."""


def rejections_by_check(counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    """Rejections counted by check first, most frequent first, each with its top reasons.

    >>> counts = Counter({("not_missing", "'email' is missing"): 20,
    ...                   ("not_missing", "'phone' is missing"): 11,
    ...                   ("grounded", "'Bob' not in input"): 24})
    >>> [(r["check"], r["count"]) for r in rejections_by_check(counts)]
    [('not_missing', 31), ('grounded', 24)]
    """
    checks: Counter[str] = Counter()
    for (check, _), count in counts.items():
        checks[check] += count
    return [
        {"check": check, "count": total,
         "examples": [[reason, n] for (c, reason), n in counts.most_common()
                      if c == check][:_TOP_REASONS]}
        for check, total in checks.most_common()
    ]  # fmt: skip


def rejection_lines(rejections: list[dict[str, Any]]) -> list[str]:
    """One line per check: how many answers it rejected, then its most frequent reasons.

    >>> rejection_lines([{"check": "not_missing", "count": 31,
    ...                   "examples": [["'email' is missing", 20], ["'phone' is missing", 11]]}])
    ["31 x not_missing: 20 x 'email' is missing; 11 x 'phone' is missing"]
    """
    return [
        f"{r['count']} x {r['check']}: "
        + "; ".join(f"{n} x {reason or '(no reason given)'}" for reason, n in r["examples"])
        for r in rejections
    ]

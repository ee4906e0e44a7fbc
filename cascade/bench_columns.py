"""What each column of ``cascade bench``'s tables means.

One text for the terminal, the report and ``--help``, so that the three never disagree. It
lives outside :mod:`cascade.bench`, whose import ``cascade --help`` should not pay for.
"""

from __future__ import annotations

__all__ = ["COLUMNS", "legend"]

COLUMNS: dict[str, str] = {
    "pass rate": "the share of tasks whose accepted answer is right (a rejected answer never "
    "passes); for a single model, the share it answered right",
    "95% CI": "bootstrap 95 % interval of the figure beside it (tasks resampled, fixed seed)",
    "$/task": "the mean cost of a task: every call made for it, re-asks and escalations included",
    "total $": "the cost of all the tasks",
    "mean s, p50 s, p95 s": "a task's latency, as recorded: its calls one after another",
    "delivered": "the share of tasks whose delivered answer is right, accepted or not (when no "
    "answer is accepted, the best rejected one is delivered)",
    "accepted by tier": "how many tasks each tier's answer was accepted at",
    "escalated": "the share of tasks that went past their first tier",
    "false accepts": "of the wrong answers the ladder's checks judged, the share they accepted",
    "false rejects": "of the right answers the ladder's checks judged, the share they rejected",
    "statuses": "how many tasks ended in each status (accepted, exhausted, ...)",
    "savings vs a model as good": "the share of cost saved against the cheapest single model "
    "whose pass rate is at least the ladder's (negative: the ladder costs more)",
    "share of oracle savings": "(best - ladder) / (best - oracle) in cost, best being the single "
    "model with the highest pass rate; only when the ladder passes at least as often as it",
    "oracle": "the cheapest model that got each task right, known in advance: a bound, not a "
    "ladder anyone can run",
}


def legend(*, markdown: bool = False) -> list[str]:
    """One line per column: ``name: meaning`` (a markdown list when ``markdown``).

    >>> legend()[0].startswith("  pass rate: the share of tasks whose accepted answer is right")
    True
    """
    mark = "- " if markdown else "  "
    return [f"{mark}{'**' if markdown else ''}{name}{'**' if markdown else ''}: {meaning}"
            for name, meaning in COLUMNS.items()]  # fmt: skip

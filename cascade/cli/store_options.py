"""The command-line options of the commands that read a run's store: report, show, drift."""

from __future__ import annotations

from typing import Any

__all__ = ["add_drift", "add_report", "add_show"]


def add_drift(commands: Any) -> None:
    """``cascade drift list|clear STORE``."""
    drift = commands.add_parser(
        "drift",
        help="list or clear a store's drift alarms",
        description="List the drift alarms runs of a store raised, or clear them: a task type"
        ' an alarm with on_drift = "escalate" started one tier higher starts where its policy'
        " says again.",
    )
    actions = drift.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="list the alarms", description="List the drift alarms a store's runs raised."
    )
    listing.add_argument("store", help="the SQLite store a run wrote")
    clear = actions.add_parser(
        "clear",
        help="clear the alarms",
        description='Clear the alarms: a task type an alarm with on_drift = "escalate" started'
        " one tier higher starts where its policy says again.",
    )
    clear.add_argument("store", help="the SQLite store a run wrote")
    clear.add_argument("--type", help="only this task type's alarms")


def add_report(commands: Any) -> None:
    """``cascade report STORE``."""
    report = commands.add_parser(
        "report", help="summarise a run store", description="Summarise the results in a store."
    )
    report.add_argument("store", help="the SQLite store a run wrote")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.add_argument(
        "--html",
        metavar="DIR",
        help="also write DIR/index.html: the report with its charts, self-contained (no network)",
    )
    report.add_argument(
        "--gold",
        help="gold answers (JSONL, as cascade eval takes): estimate each tier's false-accept "
        "rate on its audited answers",
    )
    which = report.add_mutually_exclusive_group()
    which.add_argument("--run", help="this run id (default: the latest run in the store)")
    which.add_argument("--all", action="store_true", help="every run in the store together")


def add_show(commands: Any) -> None:
    """``cascade show STORE TASK_ID``."""
    show = commands.add_parser(
        "show",
        help="one task's result, steps, verdicts and costs",
        description="Print one task's result and every step it took, from a run's store.",
    )
    show.add_argument("store", help="the SQLite store a run wrote")
    show.add_argument("task_id", help="the task's id")
    show.add_argument("--run", help="this run id (default: the latest run that holds the task)")
    show.add_argument("--json", action="store_true", help="print one JSON object")

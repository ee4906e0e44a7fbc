"""The options of ``cascade run``: the job, its pacing, its backend, and provider trouble."""

from __future__ import annotations

from typing import Any

from cascade.cli.job_options import add_rate_limits

__all__ = ["add_run"]


def add_run(commands: Any) -> None:
    """Add ``cascade run`` and its options."""
    run = commands.add_parser(
        "run",
        help="run a file of tasks through the policies",
        description="Stream tasks (JSONL or CSV) through the policy for each task's type; "
        "write one result line per task, quarantine lines that are not tasks, store every step.",
    )
    run.add_argument("tasks", help="tasks file, .jsonl or .csv")
    run.add_argument("--policy", required=True, help="a policy file, or a directory of them")
    run.add_argument("--out", default="results.jsonl", help="results file (JSONL)")
    run.add_argument("--store", default="run.db", help="SQLite store of every step and result")
    run.add_argument("--quarantine", help="bad lines (default: beside --out)")
    run.add_argument("--log", help="step log, JSON lines (default: beside --out)")
    run.add_argument("--review", help="the human review queue, JSONL (default: beside --out)")
    _add_run_pacing(run)
    _add_run_backend(run)
    _add_run_trouble(run)
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="estimate the worst-case and expected cost of the tasks file; call no model",
    )
    run.add_argument(
        "--otel",
        nargs="?",
        const="",
        metavar="URL",
        help="export OpenTelemetry traces and metrics over OTLP/HTTP to URL (default: the"
        " OTEL_EXPORTER_OTLP_ENDPOINT environment variable); needs the otel extra",
    )
    run.add_argument(
        "--otel-content",
        action="store_true",
        help="with --otel, also export each call's answer and each task's input (redacted)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar or lines")


def _add_run_pacing(run: Any) -> None:
    """How much of the job runs at once, and how much it may spend."""
    run.add_argument(
        "--concurrency", type=int, default=16, help="tasks in flight at once, per worker"
    )
    run.add_argument(
        "--workers",
        type=int,
        help="worker processes (or Ray actors) sharing the store and the rate limits"
        " (default: one per core, at most one per 1000 tasks)",
    )
    run.add_argument(
        "--executor",
        choices=("processes", "ray"),
        default="processes",
        help="run the workers as processes on this machine (default), or as actors on a Ray"
        " cluster (needs the ray extra)",
    )
    run.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="the Ray cluster to join, e.g. 10.0.0.5:6379 (default: start a local Ray)",
    )
    run.add_argument(
        "--budget",
        type=float,
        metavar="USD",
        help="stop starting tasks once the job has spent this much; rerun with more to continue",
    )
    add_rate_limits(run)
    run.add_argument(
        "--lease", type=float, default=300.0, metavar="SECONDS", help="how long a task is leased"
    )


def _add_run_backend(run: Any) -> None:
    """What answers the calls, and what is asked for the record."""
    run.add_argument("--replay", metavar="DATASET", help="serve every tier from a recorded dataset")
    run.add_argument(
        "--record-all-tiers",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="ask every tier for this share of tasks (0 to 1), for calibration; "
        "cascade export turns the store into a dataset",
    )
    run.add_argument(
        "--backend", metavar="MODULE:FACTORY", help="build the backend with this function instead"
    )


def _add_run_trouble(run: Any) -> None:
    """How the run rides out provider trouble and interrupts."""
    run.add_argument(
        "--max-outage-s",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long a task waits out a provider that keeps failing before it ends failed",
    )
    run.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on Ctrl-C or SIGTERM, how long tasks in flight may finish before they are cut off",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again the tasks that earlier runs of this job ended failed",
    )
    run.add_argument(
        "--policy-changed",
        choices=["ok"],
        help="resume a run whose policy files were edited since it started (the tasks done "
        "stay as the old policy left them; the rest run under the new one)",
    )

"""The ``cascade`` command line's parser: every command and option, and nothing else.

``cascade --help`` must stay fast, so nothing here imports litellm or the engine.
"""

from __future__ import annotations

import argparse
from typing import Any

from cascade.bench_columns import legend
from cascade.cli.record_options import add_record
from cascade.cli.run_options import add_run
from cascade.cli.serve_options import add_serve
from cascade.cli.store_options import add_drift, add_report, add_show
from cascade.cli.truth_options import add_truth

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog="cascade",
        description="Run LLM work cheapest-model-first; escalate only when a check fails.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_bench(commands)
    _add_optimize(commands)
    _add_export(commands)
    _add_import(commands)
    add_record(commands)
    add_truth(commands)
    _add_policy(commands)
    add_run(commands)
    add_serve(commands)
    add_report(commands)
    add_show(commands)
    _add_review(commands)
    _add_eval(commands)
    add_drift(commands)
    _add_route(commands)
    return parser


def _add_route(commands: Any) -> None:
    route = commands.add_parser(
        "route",
        help="learn a policy's start-tier router",
        description="Fit, on a dataset's (or a run store's) training split, the chance that each"
        " tier of a policy passes its gates on a task, from cheap features of the task; choose"
        " on the same tasks the threshold that starts a task at the first tier likely to pass.",
    )
    actions = route.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser(
        "fit", help="fit the router and choose its threshold", description=route.description
    )
    fit.add_argument("source", help="a dataset folder, or a run store (with --gold)")
    fit.add_argument("--policy", required=True, help="the policy file whose ladder it routes")
    fit.add_argument("--out", required=True, help="the router's JSON file")
    fit.add_argument("--gold", help="for a run store: the gold answers (JSONL)")
    _add_split(fit)


def _add_eval(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="score a results file against gold answers",
        description='Score a results file against gold answers ({"id": ..., "answer": ...}'
        " per line): the precision of accepted results, overall and per tier, and coverage.",
    )
    evaluate.add_argument("results", help="a results file from cascade run")
    evaluate.add_argument("--gold", required=True, help="the gold answers, JSONL")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="replay a recorded dataset through ladders: cost against pass rate",
        description="Replay a recorded dataset (see shared/datasets/README.md) through each "
        "ladder with the real engine and validators, and report every single model, the oracle "
        "and each ladder. No model is called.",
        epilog="columns:\n" + "\n".join(legend()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "dataset",
        help="dataset folder holding tasks.jsonl and responses.jsonl, or a run store (with --gold)",
    )
    bench.add_argument(
        "--gold", help="right answers for a run store's tasks, JSONL with id and answer"
    )
    bench.add_argument(
        "--ladder",
        action="append",
        default=[],
        metavar="MODEL,MODEL,...",
        help="a ladder of the dataset's models, cheapest first (repeatable)",
    )
    bench.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="a policy file (for every task) or a folder (by task kind) to replay (repeatable)",
    )
    bench.add_argument("--kind", action="append", help="only these task kinds (repeatable)")
    bench.add_argument(
        "--no-cache",
        action="store_true",
        help="run every sandboxed test again instead of reading kept verdicts",
    )
    _add_what_if(bench)
    bench.add_argument(
        "--report",
        metavar="DIR",
        help="write index.html (the page, charts inline, no network), report.md and pareto.png",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--concurrency", type=int, default=64, help="tasks replayed at once")
    bench.add_argument(
        "--split",
        choices=("all", "train", "held-out"),
        default="all",
        help="replay only the tasks cascade optimize trained on, or those it held out",
    )
    _add_split(bench)


def _add_what_if(bench: Any) -> None:
    """The rows ``cascade bench`` can add beside each ladder: a deadline, batch prices."""
    bench.add_argument(
        "--deadline",
        type=float,
        metavar="S",
        help="also replay each ladder and policy with this deadline per task, in seconds",
    )
    _add_batch(bench, "also replay each ladder with MODEL's calls priced as batch-API calls")
    bench.add_argument(
        "--audit-share",
        type=float,
        metavar="SHARE",
        help="say what a shadow audit of this share of each ladder's accepted answers (below "
        "its top tier) would find and cost",
    )
    bench.add_argument("--audit-model", metavar="MODEL", help="the audit's model (a dataset's)")
    bench.add_argument("--audit-seed", type=int, default=0, help="the audit sample's seed (0)")


def _add_batch(parser: Any, what: str) -> None:
    parser.add_argument(
        "--batch-tier", action="append", default=[], metavar="MODEL", help=f"{what} (repeatable)"
    )
    parser.add_argument(
        "--batch-discount",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="a batch call's share of the price, for models litellm has no batch price of (0.5)",
    )


def _add_split(parser: Any) -> None:
    parser.add_argument(
        "--holdout", type=float, default=0.3, help="share of each task kind held out (0.3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw (0)")


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write a run store's answers from every tier as a dataset",
        description="Write the tasks of a run store that every tier answered (run with "
        "--record-all-tiers) as a dataset in the shared format, for cascade bench and "
        "cascade optimize. Correctness comes from --gold.",
    )
    export.add_argument("store", help="the SQLite store a run wrote")
    export.add_argument("--out", required=True, help="the dataset folder to write")
    export.add_argument("--gold", help="right answers, JSONL with id and answer")
    export.add_argument("--run", help="only this run id (default: every run in the store)")
    export.add_argument(
        "--all-tasks", action="store_true", help="also tasks some tier did not answer"
    )


def _add_import(commands: Any) -> None:
    load = commands.add_parser(
        "import",
        help="turn logs of real traffic into a dataset",
        description="Read logged model calls (OpenAI chat request/response pairs, Batch API "
        "files, OTLP JSON GenAI spans, or any JSONL through a map of JSON pointers) and write "
        "a dataset: identical requests merged into one task with a weight, each serving "
        "model's first answer, tokens, cost and latency; secrets left out; bad lines "
        "quarantined.",
    )
    load.add_argument(
        "format", choices=("openai-chat", "openai-batch", "otlp", "mapped"), help="the log format"
    )
    load.add_argument("files", nargs="+", metavar="FILE", help="the log files")
    load.add_argument("--out", required=True, help="the dataset folder to write")
    load.add_argument("--map", metavar="MAP.json", help="mapped: the JSON pointers to read")


def _add_optimize(commands: Any) -> None:
    optimize = commands.add_parser(
        "optimize",
        help="find the cheapest ladder certified to reach a pass rate, and write its policy",
        description="Search every ladder of the dataset's models (gated tiers with format, "
        "tests, confidence, agreement, votes and self-consistency checks, then a strong trusted "
        "model) on a training split; order the cheapest candidates on one part of it and "
        "certify them in turn on the other, with an exact binomial lower bound; write the "
        "cheapest certified ladder and replay it on the held-out split.",
    )
    optimize.add_argument("dataset", help="dataset folder holding tasks.jsonl and responses.jsonl")
    optimize.add_argument(
        "--target-pass-rate",
        type=_rate_or_auto,
        required=True,
        metavar="X",
        help="0.9 for 90 %%, or auto: the highest the selection part expects to certify",
    )
    optimize.add_argument(
        "--out", required=True, help="the policy file (one task kind) or folder (several) to write"
    )
    optimize.add_argument("--kind", action="append", help="only these task kinds (repeatable)")
    optimize.add_argument(
        "--confidence",
        type=float,
        default=0.9,
        help="with this probability the written ladder's pass rate on new tasks reaches the "
        "target (0.9)",
    )
    optimize.add_argument(
        "--select",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="share of the training tasks that orders the candidates; the rest certifies (0.5)",
    )
    optimize.add_argument(
        "--policy",
        metavar="FILE",
        help="your policy: its validators become the checks tiers may run, and the written "
        "policy keeps the rest of it",
    )
    optimize.add_argument(
        "--audit-share",
        type=float,
        default=0.05,
        metavar="SHARE",
        help="on your own traffic (cascade import): the written policy audits this share of "
        "each tier's accepted answers against the model that served it, with drift alarms "
        "calibrated on the same comparison (0.05; 0 writes no audit)",
    )
    _add_search(optimize)
    optimize.add_argument("--json", action="store_true", help="print one JSON object")
    _add_split(optimize)


def _add_search(optimize: Any) -> None:
    """The options that shape the search itself."""
    optimize.add_argument("--max-tiers", type=int, default=3, help="tiers per ladder, 1 to 3")
    optimize.add_argument(
        "--max-reasks",
        type=int,
        default=2,
        help="re-ask budgets to try per tier, 0 to 5 (2); only as far as the dataset recorded "
        "other answers (alt_outputs) to serve re-asks with",
    )
    optimize.add_argument(
        "--strong-last-tier",
        action="store_true",
        help="let ladders end only at a model as good as the best (within its 95%% interval on "
        "the selection part); by default any model may be last, a single model included",
    )
    optimize.add_argument(
        "--any-last-tier",
        action="store_true",
        help="any model may be the last tier (the default; kept for older command lines)",
    )
    optimize.add_argument(
        "--per-kind",
        action="store_true",
        help="certify each kind's own pass rate: a candidate is certified only when every "
        "kind's own bound reaches the target (without it, the claim is for the pooled mix)",
    )
    optimize.add_argument(
        "--any-order",
        action="store_true",
        help="let a dearer model come before a cheaper one (by mean cost per task)",
    )
    optimize.add_argument(
        "--max-p95-latency",
        type=float,
        metavar="S",
        help="keep only ladders whose p95 task latency on the selection part (recorded calls, "
        "one after another) is at most S seconds",
    )
    _add_batch(optimize, "price MODEL's calls as batch-API calls, and make its tiers batch tiers")
    optimize.add_argument(
        "--router",
        action="store_true",
        help="also try each ladder with a start-tier router (fit on the selection part, "
        "certified like any other candidate); pays where a first tier is dear and often fails",
    )
    optimize.add_argument(
        "--no-cache",
        action="store_true",
        help="run every sandboxed test again instead of reading kept verdicts",
    )


def _rate_or_auto(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def _add_review(commands: Any) -> None:
    review = commands.add_parser("review", help="work with the human review queue")
    actions = review.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "import",
        help="record reviewed answers as accepted results",
        description="Read a review file whose lines have an answer filled in and record each"
        " answer in the store as the task's accepted result (tier: human). All or nothing: a bad"
        " line imports nothing. The run's results file is written again from the store.",
    )
    load.add_argument("file", help="the review file, with answers filled in")
    load.add_argument("--store", default="run.db", help="the store of the run that queued them")


def _add_policy(commands: Any) -> None:
    policy = commands.add_parser("policy", help="work with policy files")
    actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate policy files",
        description="Validate policy files or directories; print file:line: problem, exit 1.",
    )
    check.add_argument("paths", nargs="+", metavar="FILE", help="policy files or directories")

"""``cascade optimize``'s guarantee on a dataset built from traffic: import, record, truth.

A recorded suite stands in for a real job's traffic. Every task becomes one line of an
openai-chat log, as if ``--served`` had answered it: the task's messages (and its functions as
``tools``, unless ``--no-tools``), the served model's recorded output, tokens, cost and latency.
``cascade import openai-chat`` reads the log; ``cascade record`` asks every other model of the
suite every task, through litellm, of a fake OpenAI-compatible server on 127.0.0.1 that answers
each request as that model answered that task in the suite (its exact output and token counts;
costs by the suite's prices, through the policy); ``cascade truth --by served`` makes "correct"
mean "reproduces the served model's answer"; ``benchmarks/guarantee.py`` then simulates
``cascade optimize`` on random splits of that dataset, and on the suite itself for comparison
(where "correct" is the benchmark's gold grading).

Record does not send tools: the fake answers from the suite whatever was sent, which is how
the suite's models were asked anyway when their prompt holds the functions (bfcl-simple's
"prompt" mode). Latencies of the recorded answers are the loopback calls', not the suite's.

On the imported dataset the served model is right on every task by definition, so it is
always certifiable on its own: with ``--target auto`` (a target near the best model's rate)
that is what gets chosen, and the check is close to trivial. A target below 1 (``--target
0.9``) makes cheaper ladders eligible, which is where the guarantee can fail. The default
served model is gpt-4o-2024-05-13, not bfcl's gpt-4o-mini: that one is the suite's cheapest
model, so no ladder could cost less than serving it. ``--broken`` adds runs with a certifier
broken on purpose, to show that the check fails when the guarantee does not hold.

    .venv/bin/python benchmarks/imported_guarantee.py [--suite ../shared/datasets/bfcl-simple]
        [--served gpt-4o-2024-05-13] [--splits 100] [--target auto] [--target 0.9]
        [--broken] [--no-tools] [--no-suite] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade.cli import main as cascade  # after the offline switch
from cascade.testing import FakeOpenAI, FakeReply

SUITE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bfcl-simple"
GUARANTEE = Path(__file__).resolve().with_name("guarantee.py")
Row = dict[str, Any]


@dataclass(slots=True)
class Suite:
    """A recorded suite: its tasks, each (task, model)'s response, its models' prices."""

    tasks: list[Row]
    answers: dict[tuple[str, str], Row]
    models: list[Row]
    by_messages: dict[str, str] = field(default_factory=dict)
    """A task's messages, as :func:`_key` writes them, to its id."""


def _key(messages: Any) -> str:
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages])


def _read(folder: Path) -> Suite:
    def rows(name: str) -> list[Row]:
        with (folder / name).open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]

    tasks = rows("tasks.jsonl")
    answers = {(r["task_id"], r["model"]): r for r in rows("responses.jsonl")}
    models = json.loads((folder / "models.json").read_text(encoding="utf-8"))
    return Suite(tasks, answers, models, {_key(t["messages"]): t["id"] for t in tasks})


def _log_line(task: Row, answer: Row, served: str, tools: bool) -> Row:
    """One chat-completions pair, as a logging proxy would write it."""
    request: Row = {"model": re.sub(r"-\d{4}-\d{2}-\d{2}$", "", served), "temperature": 0,
                    "messages": task["messages"]}  # fmt: skip
    if tools and task.get("functions"):
        request["tools"] = [{"type": "function", "function": f} for f in task["functions"]]
    usage = {k: answer[k] for k in ("prompt_tokens", "completion_tokens") if answer[k] is not None}
    message = {"role": "assistant", "content": answer["output"]}
    response = {"id": f"chatcmpl-{task['id']}", "object": "chat.completion", "model": served,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage}  # fmt: skip
    line: Row = {"request": request, "response": response}
    for name in ("latency_s", "cost_usd"):
        if answer.get(name) is not None:
            line[name] = answer[name]
    return line


def _write_log(suite: Suite, served: str, tools: bool, path: Path) -> int:
    lines = []
    for task in suite.tasks:
        lines.append(json.dumps(_log_line(task, suite.answers[task["id"], served], served, tools)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _policy(suite: Suite, others: list[str], base_url: str) -> str:
    """One tier per asked model, at the fake's address and the suite's price."""
    prices = {m["name"]: m for m in suite.models}
    text = 'task_type = "chat"\n'
    for model in others:
        price = prices[model]
        text += (
            f'\n[[tiers]]\nmodel = "openai/{model}"\n'
            f'params = {{ api_base = "{base_url}", api_key = "sk-fake" }}\n'
            f"price = {{ input_usd_per_mtok = {price['input_usd_per_mtok']}, "
            f"output_usd_per_mtok = {price['output_usd_per_mtok']} }}\n"
        )
    return text


@dataclass(slots=True)
class Replayer:
    """The fake's handler: each request answered as its model answered its task in the suite."""

    suite: Suite
    misses: Counter[str] = field(default_factory=Counter)

    def __call__(self, body: dict[str, Any]) -> FakeReply:
        """The suite's answer of ``body["model"]`` to the task whose messages were sent."""
        task = self.suite.by_messages.get(_key(body.get("messages", [])))
        answer = self.suite.answers.get((task or "", str(body.get("model"))))
        if answer is None:
            self.misses["unknown task" if task is None else "unknown model"] += 1
            return FakeReply(status=404)
        return FakeReply(content=answer["output"], model=body["model"],
                         prompt_tokens=answer["prompt_tokens"],
                         completion_tokens=answer["completion_tokens"])  # fmt: skip


def _cli(argv: list[str], quiet: bool = True) -> str:
    """Run a cascade command in this process; its output, which is printed unless ``quiet``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cascade(argv)
    if not quiet or code != 0:
        print(out.getvalue(), end="")
    if code != 0:
        raise SystemExit(f"cascade {' '.join(argv)} failed with exit status {code}")
    return out.getvalue()


def _record(suite: Suite, dataset: Path, others: list[str], work: Path) -> Replayer:
    replayer = Replayer(suite)
    with FakeOpenAI(replayer) as fake:
        policy = work / "policy.toml"
        policy.write_text(_policy(suite, others, fake.base_url), encoding="utf-8")
        argv = ["record", str(dataset), "--policy", str(policy), "--sample",
                str(len(suite.tasks)), "--workers", "1", "--no-progress"]  # fmt: skip
        for model in others:
            argv += ["--model", f"openai/{model}"]
        print("  " + _cli(argv).strip().replace("\n", "\n  "))
    return replayer


def _dataset_rows(dataset: Path) -> list[Row]:
    with (dataset / "responses.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _check_recorded(suite: Suite, dataset: Path, served: str) -> Iterator[str]:
    """How many answers differ from the suite's outputs; each model's share right both ways."""
    ids = {row["id"]: suite.by_messages[_key(row["messages"])] for row in _tasks(dataset)}
    rows = _dataset_rows(dataset)
    counts: Counter[str] = Counter()
    served_right: Counter[str] = Counter()
    gold_right: Counter[str] = Counter()
    differ = 0
    for row in rows:
        model = row["model"].removeprefix("openai/")
        original = suite.answers[ids[row["task_id"]], model]
        differ += row["output"] != original["output"]
        counts[model] += 1
        served_right[model] += bool(row["correct"])
        gold_right[model] += bool(original["correct"])
    yield (f"{len(rows)} answers in the dataset ({len(counts)} models x {len(ids)} tasks); "
           f"{differ} differ from the suite's recorded output")  # fmt: skip
    yield "per model: share right by 'reproduces the served answer' | by the suite's gold"
    order = sorted(counts, key=lambda m: -served_right[m] / counts[m])
    for model in order:
        mark = " (served)" if model == served else ""
        yield (f"  {model + mark:36s} {served_right[model] / counts[model]:6.1%} | "
               f"{gold_right[model] / counts[model]:6.1%}")  # fmt: skip


def _tasks(dataset: Path) -> list[Row]:
    with (dataset / "tasks.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _guarantee(dataset: Path, splits: int, target: str, broken: bool) -> str:
    """``benchmarks/guarantee.py`` on a dataset, run to its end; what it printed."""
    argv = [sys.executable, str(GUARANTEE), str(dataset), "--target", target,
            "--splits", str(splits)] + ["--broken"] * broken  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


def _build(args: argparse.Namespace, suite: Suite, work: Path, timings: dict[str, float]) -> Path:
    """The log, its import, the other models' answers and the truth: the dataset's folder."""
    others = [m["name"] for m in suite.models if m["name"] != args.served]
    log, dataset = work / "chat.jsonl", work / "traffic"
    started = time.perf_counter()
    lines = _write_log(suite, args.served, not args.no_tools, log)
    timings["write the log"] = time.perf_counter() - started
    print(f"log: {lines} chat-completion pairs served by {args.served} ({log})")
    started = time.perf_counter()
    _cli(["import", "openai-chat", str(log), "--out", str(dataset)], quiet=False)
    timings["cascade import"] = time.perf_counter() - started
    kinds = Counter(t["kind"] for t in _tasks(dataset))
    shown = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
    print(f"imported: {kinds.total()} tasks ({shown})")
    print(f"cascade record: {len(others)} models x {kinds.total()} tasks, from 127.0.0.1")
    started = time.perf_counter()
    replayer = _record(suite, dataset, others, work)
    timings["cascade record"] = time.perf_counter() - started
    if replayer.misses:
        print(f"  requests the fake could not place: {dict(replayer.misses)}")
    started = time.perf_counter()
    _cli(["truth", str(dataset), "--by", "served"])
    timings["cascade truth --by served"] = time.perf_counter() - started
    for row in _check_recorded(suite, dataset, args.served):
        print(row)
    return dataset


def main() -> None:
    """Build the dataset, run the guarantee's simulation on it and on the suite, print both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--served", default="gpt-4o-2024-05-13")
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--target", action="append", help="auto (the default) or a pass rate; "
                        "repeat it to run several")  # fmt: skip
    parser.add_argument("--broken", action="store_true", help="also a certifier broken on purpose")
    parser.add_argument("--no-tools", action="store_true", help="log no tools with the requests")
    parser.add_argument("--no-suite", action="store_true", help="skip the runs on the suite")
    parser.add_argument("--keep", type=Path, help="build the dataset here and keep it")
    args = parser.parse_args()
    suite = _read(args.suite)
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        dataset = _build(args, suite, work, timings)
        print(f"(on the imported dataset {args.served} is right on every task by definition, "
              "so 'the best single model' below is the served model)")  # fmt: skip
        runs = [("imported", dataset, "reproduces the served model's answer", False)]
        if not args.no_suite:
            runs.append(("suite", args.suite, "the benchmark's own grading (gold)", False))
        if args.broken:
            runs.append(("imported", dataset, "reproduces the served model's answer", True))
        for name, folder, means, broken in runs:
            for target in args.target or ["auto"]:
                started = time.perf_counter()
                shown = _guarantee(folder, args.splits, target, broken)
                what = f"guarantee.py{' --broken' * broken} --target {target} on the {name}"
                timings[what] = time.perf_counter() - started
                print(f"\n{what} dataset (correct means: {means})")
                print(shown, end="")
    print("\ntimings: " + "; ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


if __name__ == "__main__":
    main()

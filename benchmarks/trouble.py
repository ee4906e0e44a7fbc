"""``cascade run`` through provider trouble, side by side with a clean run of the same job.

A fake OpenAI-compatible provider (``cascade.testing.FakeOpenAI``, 20 ms per answer) runs in
this process on 127.0.0.1 and serves both tiers of a two-tier policy (a cheap model and a dear
one, ten times its price; every answer "ok" is accepted). The same 1,000 tasks run through
``cascade run --workers 2 --concurrency 16`` once per scenario, each in a fresh store, with the
breaker's ``cooldown_s`` from ``--cooldown`` (the policies' default is 30 s):

- ``clean``: every request answered;
- ``500 burst``: the cheap model's first 40 requests get HTTP 500;
- ``3 s outage``: every request gets 503 for 3 s, starting 1 s after the first request;
- ``malformed burst``: the cheap model's first 10 requests get a malformed body or a dropped
  connection (alternately);
- ``429 burst``: the cheap model's first 100 requests get 429 with ``Retry-After: 1``.

For each it prints the tasks accepted and failed, the tasks that climbed to the dear tier, the
cost and its ratio to the clean run's, and the wall time. Target: every task accepted, with the
cost within 10% of the clean run's.

    .venv/bin/python benchmarks/trouble.py [--tasks 1000] [--workers 2] [--cooldown 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade.testing import FakeOpenAI, FakeReply  # after the offline switch above

ROOT = Path(__file__).resolve().parents[1]
LATENCY_S = 0.02

POLICY = """\
task_type = "echo"
[[tiers]]
model = "openai/cheap-model"
timeout_s = 5
params = {{ api_base = "{url}", api_key = "sk-bench-not-a-key" }}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }}
[[tiers]]
model = "openai/dear-model"
timeout_s = 5
params = {{ api_base = "{url}", api_key = "sk-bench-not-a-key" }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 20.0 }}
[[validators]]
kind = "one_of"
labels = ["ok"]
[breaker]
failures = 5
cooldown_s = {cooldown}
"""

Reply = Callable[[str, int, float], FakeReply]
"""(model, n-th request to that model, seconds since the first request) -> the reply."""


def clean(_model: str, _n: int, _t: float) -> FakeReply:
    """Answer "ok"."""
    return FakeReply("ok", delay_s=LATENCY_S)


def burst_500(model: str, n: int, _t: float) -> FakeReply:
    """HTTP 500 to the cheap model's first 40 requests."""
    if model == "cheap-model" and n <= 40:
        return FakeReply(status=500)
    return clean(model, n, 0)


def outage(model: str, n: int, t: float) -> FakeReply:
    """503 to everything for 3 s, from 1 s after the first request."""
    return FakeReply(status=503) if 1.0 <= t < 4.0 else clean(model, n, t)


def malformed(model: str, n: int, _t: float) -> FakeReply:
    """A malformed body or a dropped connection to the cheap model's first 10 requests."""
    if model == "cheap-model" and n <= 10:
        return FakeReply(body=b'{"choices": [tru') if n % 2 else FakeReply(drop=True)
    return clean(model, n, 0)


def burst_429(model: str, n: int, _t: float) -> FakeReply:
    """429 with Retry-After: 1 to the cheap model's first 100 requests."""
    if model == "cheap-model" and n <= 100:
        return FakeReply(status=429, headers={"Retry-After": "1"})
    return clean(model, n, 0)


SCENARIOS: dict[str, Reply] = {
    "clean": clean,
    "500 burst": burst_500,
    "3 s outage": outage,
    "malformed burst": malformed,
    "429 burst": burst_429,
}


class Script:
    """Counts requests per model and answers as the scenario says."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._lock = threading.Lock()
        self._counts: dict[str, itertools.count[int]] = {}
        self._start: float | None = None

    def __call__(self, body: dict[str, Any]) -> FakeReply:
        """The reply to the next request."""
        model = str(body.get("model"))
        with self._lock:
            number = next(self._counts.setdefault(model, itertools.count(1)))
            self._start = self._start or time.monotonic()
            elapsed = time.monotonic() - self._start
        return self._reply(model, number, elapsed)


def run(
    name: str, reply: Reply, tasks: int, workers: int, folder: Path, cooldown: float
) -> dict[str, Any]:
    """One scenario: a fresh job folder, one ``cascade run``, the figures from its results."""
    job = folder / name.replace(" ", "-")
    job.mkdir()
    with FakeOpenAI(Script(reply)) as server:
        (job / "policy.toml").write_text(POLICY.format(url=server.base_url, cooldown=cooldown))
        (job / "tasks.jsonl").write_text(
            "".join(
                json.dumps({"id": f"t{n}", "input": f"say ok {n}"}) + "\n" for n in range(tasks)
            )
        )
        started = time.monotonic()
        done = subprocess.run(  # our own command line
            [sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl"), "--policy",
             str(job / "policy.toml"), "--out", str(job / "results.jsonl"), "--store",
             str(job / "run.db"), "--workers", str(workers), "--concurrency", "16",
             "--no-progress"],
            capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        seconds = time.monotonic() - started
    results = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
    return {
        "exit": done.returncode,
        "results": len(results),
        "accepted": sum(r["status"] == "accepted" for r in results),
        "failed": sum(r["status"] == "failed" for r in results),
        "climbed": sum(r.get("tier") == 1 for r in results),
        "cost": sum(r["cost_usd"] for r in results),
        "seconds": seconds,
    }


def main() -> None:
    """Run every scenario; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cooldown", type=float, default=2.0, help="the breaker's cooldown_s")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, reply in SCENARIOS.items():
            rows[name] = run(name, reply, args.tasks, args.workers, Path(folder), args.cooldown)
    base = rows["clean"]["cost"]
    ms = LATENCY_S * 1000
    print(f"{args.tasks} tasks, --workers {args.workers} --concurrency 16, {ms:.0f} ms answers,"
          f" breaker cooldown {args.cooldown:g} s")  # fmt: skip
    head = ("scenario", "exit", "accepted", "failed", "climbed", "cost $", "x clean", "wall s")
    print("{:<16} {:>4} {:>8} {:>6} {:>7} {:>10} {:>7} {:>6}".format(*head))
    for name, row in rows.items():
        cells = (name, row["exit"], row["accepted"], row["failed"], row["climbed"])
        print(
            "{:<16} {:>4} {:>8} {:>6} {:>7}".format(*cells)
            + f" {row['cost']:>10.6f} {row['cost'] / base:>7.3f} {row['seconds']:>6.1f}"
        )


if __name__ == "__main__":
    main()

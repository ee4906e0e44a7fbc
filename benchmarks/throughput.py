"""Attempts per second of ``cascade run`` with one and two worker processes, side by side.

Beside them: raw litellm in one process, and the ideal rate (concurrency ÷ latency).

A fake OpenAI-compatible provider answering in 50 ms runs in its own process on 127.0.0.1. The
same tasks file runs through ``cascade run`` (litellm backend, one tier, every answer accepted)
with ``--workers 1`` and then ``--workers 2``, each in a fresh store; the steady rate is the
store's attempts over the span of their timestamps, so process start-up (litellm's import takes
seconds) is left out, and the wall time is shown beside it. Then raw ``litellm.acompletion``
makes the same number of calls at the same concurrency in this one process.

    .venv/bin/python benchmarks/throughput.py [--tasks 8000] [--concurrency 100]

Target: two workers at least 1.7 times one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade import Store  # after the offline switch above
from cascade.backends.litellm import load_litellm
from cascade.testing import serve_in_subprocess

ROOT = Path(__file__).resolve().parents[1]
MODEL = "openai/gpt-4o-mini"
LATENCY_S = 0.05
PROMPT = "Extract the contact from: Ada Lovelace, ada@example.org, {input}"

POLICY = """\
task_type = "contact"
prompt = "{prompt}"
[[tiers]]
model = "{model}"
retries = 0
timeout_s = 30
params = {{ api_base = "{base_url}", api_key = "sk-fake" }}
{backend}"""


def write_job(work: Path, base_url: str, tasks: int, backend: str | None = None) -> None:
    """The policy (one tier, every answer accepted) and ``tasks`` tasks, in ``work``.

    ``backend`` is the tier's ``backend`` (``"http"``: the lean path); by default, litellm.
    """
    chosen = f'backend = "{backend}"\n' if backend else ""
    (work / "contact.toml").write_text(
        POLICY.format(prompt=PROMPT, model=MODEL, base_url=base_url, backend=chosen)
    )
    lines = (json.dumps({"id": f"t{n}", "input": f"item {n}"}) for n in range(tasks))
    (work / "tasks.jsonl").write_text("\n".join(lines) + "\n")


def run_workers(
    work: Path, workers: int, concurrency: int, store: Path | None = None
) -> tuple[int, float, float]:
    """``cascade run`` with ``workers`` processes: attempts, steady attempts/s, wall seconds.

    ``store`` is a fresh store to run in (by default one named for the worker count).
    """
    store = store or work / f"run-{workers}.db"
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable, "-m", "cascade.cli", "run", str(work / "tasks.jsonl"),
            "--policy", str(work / "contact.toml"), "--store", str(store),
            "--out", str(work / f"results-{store.stem}.jsonl"), "--workers", str(workers),
            "--concurrency", str(concurrency), "--no-progress",
        ],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    with Store(store) as db:
        count, first, last, bad = next(
            db.select("SELECT count(*), min(ts), max(ts), sum(error IS NOT NULL) FROM attempts")
        )
    if bad:
        raise SystemExit(f"{bad} calls failed with --workers {workers}: see {store}")
    return int(count), count / (last - first), wall


async def raw(base_url: str, calls: int, concurrency: int) -> float:
    """Calls/s for bare litellm.acompletion under a semaphore, in this process."""
    litellm = load_litellm()
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> None:
        messages = [{"role": "user", "content": PROMPT.format(input=f"item {number}")}]
        async with gate:
            await litellm.acompletion(
                model=MODEL, messages=messages, api_base=base_url, api_key="sk-fake",
                timeout=30, num_retries=0, max_retries=0,
            )  # fmt: skip

    await asyncio.gather(*(one(n) for n in range(50)))  # warm up the client pool
    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(calls)))
    return calls / (time.perf_counter() - start)


def main() -> None:
    """Start the fake provider, run both worker counts and raw litellm, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=100, help="tasks in flight per worker")
    args = parser.parse_args()
    with serve_in_subprocess(LATENCY_S) as base_url:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            write_job(work, base_url, args.tasks)
            rows = [(w, *run_workers(work, w, args.concurrency)) for w in (1, 2)]
        raw_rate = asyncio.run(raw(base_url, args.tasks, args.concurrency))
    print(f"fake provider {LATENCY_S * 1000:.0f} ms per answer; {args.tasks} tasks;"
          f" concurrency {args.concurrency} per worker; {os.cpu_count()} cores")  # fmt: skip
    print(f"{'setup':>22} {'attempts':>9} {'attempts/s':>11} {'wall s':>7} {'vs 1 worker':>12}"
          f" {'vs raw':>7} {'% of ideal':>11}")  # fmt: skip
    one_worker = rows[0][2]
    for workers, count, rate, wall in rows:
        ideal = workers * args.concurrency / LATENCY_S
        share = rate / ideal
        print(f"{f'cascade --workers {workers}':>22} {count:>9} {rate:>11.1f} {wall:>7.1f}"
              f" {rate / one_worker:>11.2f}x {rate / raw_rate:>6.2f}x {share:>10.1%}")  # fmt: skip
    ideal = args.concurrency / LATENCY_S
    print(f"{'raw litellm, 1 process':>22} {args.tasks:>9} {raw_rate:>11.1f} {'':>7}"
          f" {raw_rate / one_worker:>11.2f}x {1:>6.2f}x {raw_rate / ideal:>10.1%}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Peak memory and wall time of ``cascade run`` over a million synthetic tasks.

The tasks file is written to a temporary folder (about 60 MB), then ``cascade run`` runs it in a
subprocess with an instant scripted backend (``benchmarks.memory:instant``, a two-tier ladder
where every tenth task escalates), so what is measured is the runner itself: streaming input,
the ledger, leases, recording, the step log and the results file. Reported beside it, as the
baseline: the peak memory of a process that only imports cascade and loads the policy.

    .venv/bin/python benchmarks/memory.py [--tasks 1000000] [--workers 1]

Target: peak RSS at most 400 MB for a million tasks.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cascade.backends.base import Request, Response
from cascade.types import Price, Usage

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
task_type = "synthetic"
prompt = "Label this: {input}"
[[tiers]]
model = "small"
[[tiers]]
model = "big"
[[validators]]
kind = "one_of"
labels = ["ok"]
"""


PRICES = {"small": Price(0.15, 0.6), "big": Price(2.5, 10.0)}


class Instant:
    """Answer at once: ``small`` says "ok" except for ids ending in 0, ``big`` always does.

    Unlike the test double ``ScriptedBackend``, it keeps no record of its calls: a million of
    them would be the benchmark's memory, not the runner's.
    """

    async def complete(self, request: Request) -> Response:
        """The answer, priced from its word counts."""
        text = "nope" if request.model == "small" and request.task_id.endswith("0") else "ok"
        usage = Usage(sum(len(m["content"].split()) for m in request.messages), 1)
        return Response(text, request.model, usage, PRICES[request.model].cost(usage))


def instant() -> Instant:
    """The backend ``cascade run --backend benchmarks.memory:instant`` builds."""
    return Instant()


def _write_tasks(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for number in range(count):
            task = {
                "id": f"task-{number}",
                "type": "synthetic",
                "input": f"item {number} of {count}",
            }
            out.write(json.dumps(task) + "\n")


def _child_peak_mb(command: list[str]) -> tuple[float, float]:
    """Run ``command`` as the only child so far; its peak RSS (MB) and wall time (s)."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, elapsed


def main() -> None:
    """Write the tasks, run them, print peak memory and wall time against the baseline."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "synthetic.toml").write_text(POLICY)
        tasks = work / "tasks.jsonl"
        _write_tasks(tasks, args.tasks)
        load = "from cascade.policy import load_policies; import sys; load_policies(sys.argv[1])"
        base_mb, _ = _child_peak_mb([sys.executable, "-c", load, str(work / "synthetic.toml")])
        peak_mb, seconds = _child_peak_mb(
            [
                sys.executable, "-m", "cascade.cli", "run", str(tasks),
                "--policy", str(work / "synthetic.toml"),
                "--backend", "benchmarks.memory:instant",
                "--store", str(work / "run.db"), "--out", str(work / "results.jsonl"),
                "--workers", str(args.workers), "--concurrency", "64", "--no-progress",
            ]
        )  # fmt: skip
        results = sum(1 for _ in (work / "results.jsonl").open())
        store_mb = (work / "run.db").stat().st_size / 1e6
    print(f"tasks {args.tasks}, workers {args.workers}, results written {results}")
    print(f"{'':24} {'peak RSS MB':>12} {'wall s':>8} {'tasks/s':>8}")
    print(f"{'baseline (import+policy)':24} {base_mb:>12.1f} {'':>8} {'':>8}")
    print(f"{'cascade run':24} {peak_mb:>12.1f} {seconds:>8.1f} {args.tasks / seconds:>8.0f}")
    print(f"ratio peak/baseline {peak_mb / base_mb:.2f}; store {store_mb:.0f} MB on disk")


if __name__ == "__main__":
    main()

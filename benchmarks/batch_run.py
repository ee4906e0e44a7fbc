"""A 2,000-task ``cascade run`` with a batch tier, side by side with the same job run synchronously.

A fake OpenAI-compatible provider (``cascade.testing.FakeOpenAI``) runs in this process on
127.0.0.1: 20 ms per synchronous answer, and a batch API whose batches end ``--complete-after``
seconds after they are made (a provider's 24 hours, compressed). The policy has a cheap tier (a
batch tier in the ``batch`` run, an ordinary one in the ``synchronous`` run) and a dear tier
ten times its price; the cheap model answers "no" to one task in ten, which then climbs. Each
run is ``cascade run --concurrency 16`` in a fresh store.

For each it prints the wall time, the tasks accepted and escalated, the cost and its ratio to
the synchronous run, the batches made, and how many requests the provider was asked to run
more than once (the target: none). The batch run's wall time is about the gathering
(``batch_wait_s``), the batches' completion and the polling backoff, not the task count.

    .venv/bin/python benchmarks/batch_run.py [--tasks 2000] [--complete-after 5] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade.testing import FakeBatches, FakeOpenAI, FakeReply  # after the offline switch

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
task_type = "echo"
[[tiers]]
model = "openai/cheap-model"
{mode}
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
"""


def reply(body: dict[str, Any]) -> FakeReply:
    """No from the cheap model to tasks whose number ends in 7; else "ok" after 20 ms."""
    text = str(body["messages"][-1]["content"])
    if body.get("model") == "cheap-model" and text.endswith("7"):
        return FakeReply("no", delay_s=0.02)
    return FakeReply("ok", delay_s=0.02)


def run(name: str, mode: str, tasks: int, complete_after_s: float, workers: int) -> dict[str, Any]:
    """One ``cascade run`` of the job against a fresh fake provider; what it did."""
    batches = FakeBatches(complete_after_s=complete_after_s)
    with FakeOpenAI(reply, batches=batches) as server, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "policy.toml").write_text(POLICY.format(mode=mode, url=server.base_url))
        lines = [json.dumps({"id": f"t{n}", "type": "echo", "input": f"say ok {n}"})
                 for n in range(tasks)]  # fmt: skip
        (folder / "tasks.jsonl").write_text("\n".join(lines) + "\n")
        command = [
            *(sys.executable, "-m", "cascade.cli", "run", str(folder / "tasks.jsonl")),
            *("--policy", str(folder / "policy.toml"), "--out", str(folder / "results.jsonl")),
            *("--store", str(folder / "run.db"), "--no-progress", "--concurrency", "16"),
            *("--workers", str(workers)),
        ]
        started = time.perf_counter()
        done = subprocess.run(  # our own command line
            command, capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        results = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
        received = Counter(batches.received)
    return {
        "name": name,
        "wall_s": wall,
        "results": len(results),
        "accepted": sum(r["status"] == "accepted" for r in results),
        "escalated": sum(r["model"] == "dear-model" for r in results),
        "cost_usd": sum(r["cost_usd"] for r in results),
        "batches": len(batches.created),
        "sent_twice": sum(1 for count in received.values() if count > 1),
    }


def main() -> None:
    """Run both and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--complete-after", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    batch_mode = 'mode = "batch"\nbatch_size = 500\nbatch_wait_s = 1'
    rows = [
        run("synchronous", "", args.tasks, args.complete_after, args.workers),
        run("batch", batch_mode, args.tasks, args.complete_after, args.workers),
    ]
    base = rows[0]["cost_usd"]
    print(f"{args.tasks} tasks, batches end {args.complete_after:g} s after they are made, "
          f"{args.workers} worker(s)")  # fmt: skip
    print(f"{'run':12} {'wall s':>7} {'accepted':>9} {'escalated':>9} {'cost $':>10} "
          f"{'x sync':>7} {'batches':>7} {'sent twice':>10}")  # fmt: skip
    for row in rows:
        print(f"{row['name']:12} {row['wall_s']:7.1f} {row['accepted']:9} {row['escalated']:9} "
              f"{row['cost_usd']:10.6f} {row['cost_usd'] / base:7.3f} {row['batches']:7} "
              f"{row['sent_twice']:10}")  # fmt: skip


if __name__ == "__main__":
    main()

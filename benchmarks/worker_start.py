"""Worker start-up: seconds from ``cascade run --workers N`` to its first call, and to its end.

Against the loopback fake provider (50 ms per answer), a small job runs with N worker processes
forked from the fork server (:mod:`cascade.run.spawning`, what ``cascade run`` does), side by
side with the same run whose workers are spawned fresh (the baseline: each imports Python,
cascade and litellm on its own). Reported, as medians over rounds that alternate the two: the
seconds to the first call and to the end of the run. (Not CPU: a fork server's workers are not
this process's children, so the kernel's count of its children's CPU leaves them out.)

    .venv/bin/python benchmarks/worker_start.py [--workers 2] [--tasks 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from throughput import write_job  # the same job as the throughput benchmark

from cascade.store import Store
from cascade.testing import serve_in_subprocess

ROOT = Path(__file__).resolve().parents[1]
SPAWNED = """
import multiprocessing, sys
import cascade.run.spawning as spawning
spawning.worker_context = lambda *, litellm: multiprocessing.get_context("spawn")
from cascade.cli import main
sys.exit(main(sys.argv[1:]))
"""
FORKED = "import sys\nfrom cascade.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def one_run(work: Path, workers: int, code: str) -> tuple[float, float]:
    """Seconds from the start to the first call and to the end."""
    store = work / f"run-{time.monotonic_ns()}.db"
    argv = [
        sys.executable, "-c", code, "run", str(work / "tasks.jsonl"), "--policy",
        str(work / "contact.toml"), "--store", str(store), "--out", str(work / "out.jsonl"),
        "--workers", str(workers), "--concurrency", "50", "--no-progress",
    ]  # fmt: skip
    start = time.time()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    end = time.time()
    with Store(store) as db:
        ((first,),) = db.select("SELECT min(ts) FROM attempts")
    return first - start, end - start


def main() -> None:
    """Alternate the two ways over rounds and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found: dict[str, list[tuple[float, float]]] = {"spawned": [], "forked": []}
    with serve_in_subprocess(0.05) as base_url, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_job(work, base_url, args.tasks)
        for _ in range(args.rounds):
            found["spawned"].append(one_run(work, args.workers, SPAWNED))
            found["forked"].append(one_run(work, args.workers, FORKED))
    print(f"--workers {args.workers}, {args.tasks} tasks, {args.rounds} rounds, "
          f"{os.cpu_count()} cores; medians, seconds from the start of cascade run")  # fmt: skip
    print(f"{'workers':>24} {'first call':>11} {'done':>7}")
    medians = {}
    for name, runs in found.items():
        medians[name] = [statistics.median(column) for column in zip(*runs, strict=True)]
        first, done = medians[name]
        label = "spawned (baseline)" if name == "spawned" else "forked from the server"
        print(f"{label:>24} {first:11.2f} {done:7.2f}")
    first_ratio = medians["forked"][0] / medians["spawned"][0]
    done_ratio = medians["forked"][1] / medians["spawned"][1]
    print(
        f"forked: first call at {first_ratio:.2f}x, done at {done_ratio:.2f}x the baseline's time"
    )


if __name__ == "__main__":
    main()

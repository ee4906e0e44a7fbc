"""``cascade run`` on Ray with 2 actors against ``--workers 2``, side by side in one run.

A fake OpenAI-compatible provider answering in 50 ms runs in its own process on 127.0.0.1. The
same tasks file runs through ``cascade run`` (litellm backend, one tier, every answer accepted)
twice, each in a fresh store: with two worker processes, then with ``--executor ray
--workers 2`` (a local Ray that the run starts and stops). For each: the steady rate (the
store's attempts over the span of their timestamps, start-up left out), the wall time, the peak
RSS of the whole process tree (the run, its workers, and for Ray its daemons and actors, summed
from /proc every 0.2 s), and the CPU seconds of that tree, from which the per-task CPU that Ray
adds is read.

    .venv/bin/python benchmarks/ray_executor.py [--tasks 4000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade import Store  # after the offline switch above
from cascade.testing import serve_in_subprocess

ROOT = Path(__file__).resolve().parents[1]
LATENCY_S = 0.05
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

POLICY = """\
task_type = "contact"
prompt = "Extract the contact from: Ada Lovelace, ada@example.org, {{input}}"
[[tiers]]
model = "openai/gpt-4o-mini"
retries = 0
timeout_s = 30
params = {{ api_base = "{base_url}", api_key = "sk-fake" }}
"""


def _tree(root: int) -> list[int]:
    """``root`` and every process below it, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _usage(pid: int) -> tuple[int, float] | None:
    """RSS bytes and CPU seconds (user + system) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[21]) * _PAGE, (int(fields[11]) + int(fields[12])) / _TICK


def _name(pid: int, root: int) -> str:
    """What a process of the tree is: the run itself, a Ray actor or daemon, a worker."""
    if pid == root:
        return "the run (coordinator)"
    try:
        line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in line if w]
    if not words:
        return "?"
    if words[0].startswith("ray::"):
        return words[0].split(".")[0]
    for word in words:
        for daemon in ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py", "agent"):
            if Path(word).name.startswith(daemon):
                return f"ray {daemon}"
    return "worker process" if "multiprocessing" in " ".join(words) else Path(words[-1]).name


@dataclass
class Watch:
    """Peak summed RSS of a process tree, and the last CPU seconds seen of each process."""

    peak_rss: int = 0
    cpu: dict[int, float] | None = None
    names: dict[int, str] | None = None

    def follow(self, process: subprocess.Popen[bytes]) -> None:
        """Sample until ``process`` exits."""
        self.cpu, self.names = {}, {}
        while process.poll() is None:
            rss = 0
            for pid in _tree(process.pid):
                usage = _usage(pid)
                if usage is not None:
                    rss += usage[0]
                    self.cpu[pid] = usage[1]
                    name = _name(pid, process.pid)  # a Ray worker renames itself
                    if name != "?" or pid not in self.names:
                        self.names[pid] = name
            self.peak_rss = max(self.peak_rss, rss)
            time.sleep(0.2)


def run(work: Path, name: str, *extra: str) -> tuple[int, float, float, float, float]:
    """One ``cascade run``: attempts, steady attempts/s, wall s, peak RSS MB, CPU s.

    The CPU seconds of each kind of process in the tree are printed.
    """
    store = work / f"{name}.db"
    command = [
        sys.executable, "-m", "cascade.cli", "run", str(work / "tasks.jsonl"),
        "--policy", str(work / "contact.toml"), "--store", str(store),
        "--out", str(work / f"{name}.jsonl"), "--no-progress", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    watch = Watch()
    thread = threading.Thread(target=watch.follow, args=(process,))
    thread.start()
    code = process.wait()
    thread.join()
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{name}: cascade run exited {code}")
    with Store(store) as db:
        count, first, last, bad = next(
            db.select("SELECT count(*), min(ts), max(ts), sum(error IS NOT NULL) FROM attempts")
        )
    if bad:
        raise SystemExit(f"{bad} calls failed in {name}: see {store}")
    cpu = sum((watch.cpu or {}).values())
    kinds: dict[str, float] = {}
    for pid, seconds in (watch.cpu or {}).items():
        kind = (watch.names or {}).get(pid, "?")
        kinds[kind] = kinds.get(kind, 0.0) + seconds
    ranked = sorted(kinds.items(), key=lambda kv: -kv[1])
    shares = ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in ranked)
    print(f"{name}: CPU s by process: {shares}")
    return int(count), count / (last - first), wall, watch.peak_rss / 2**20, cpu


def main() -> None:
    """Start the fake provider, run both executors, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=50, help="tasks in flight per worker")
    args = parser.parse_args()
    concurrency = ("--workers", "2", "--concurrency", str(args.concurrency))
    with serve_in_subprocess(LATENCY_S) as base_url, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "contact.toml").write_text(POLICY.format(base_url=base_url))
        lines = (json.dumps({"id": f"t{n}", "input": f"item {n}"}) for n in range(args.tasks))
        (work / "tasks.jsonl").write_text("\n".join(lines) + "\n")
        rows = [
            ("--workers 2 (processes)", *run(work, "processes", *concurrency)),
            ("--executor ray, 2 actors", *run(work, "ray", *concurrency, "--executor", "ray")),
        ]
    print(f"fake provider {LATENCY_S * 1000:.0f} ms per answer; {args.tasks} tasks;"
          f" concurrency {args.concurrency} per worker; {os.cpu_count()} cores")  # fmt: skip
    print(f"{'executor':>26} {'attempts':>9} {'attempts/s':>11} {'vs processes':>13}"
          f" {'wall s':>7} {'peak RSS MB':>12} {'CPU s':>7} {'CPU ms/task':>12}")  # fmt: skip
    base_rate = rows[0][2]
    for name, count, rate, wall, rss, cpu in rows:
        print(f"{name:>26} {count:>9} {rate:>11.1f} {rate / base_rate:>12.2f}x {wall:>7.1f}"
              f" {rss:>12.0f} {cpu:>7.1f} {1000 * cpu / count:>12.2f}")  # fmt: skip
    added = (rows[1][5] - rows[0][5]) / args.tasks
    print(f"CPU that Ray adds per task (whole tree, daemons included): {1000 * added:.2f} ms")


if __name__ == "__main__":
    main()

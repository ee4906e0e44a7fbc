"""CPU per attempt of a whole ``cascade run`` against a plain loop of ``litellm.acompletion``.

A fake OpenAI-compatible provider answering in 50 ms runs in its own process on 127.0.0.1. Each
side runs in a fresh process, at the same concurrency, twice: with ``--small`` and with
``--large`` calls. The CPU the process (and its children) used is read from the kernel
(``RUSAGE_CHILDREN``), and the CPU per attempt is the slope between the two sizes, so start-up
(Python, litellm's import, reading the policy) is left out. ``cascade run`` freezes its
start-up heap once the first answers are in (:mod:`cascade.run.heap`), which spares the garbage
collector a walk over litellm's heap on every full pass; so the plain loop also runs a second
time with its heap frozen the same way. ``ours`` is what ``cascade run --workers 1`` (ledger,
store, step log, guard, engine, validation) spends per attempt beyond that loop; its target is
at most 0.3 ms. The rate ratio compares the steady attempts/s (from the store's timestamps)
with the plain loop's calls/s (as it is, unfrozen); its target is at least 0.9.

    .venv/bin/python benchmarks/run_overhead.py [--small 1000] [--large 4000] [--concurrency 50]
        [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from throughput import PROMPT, run_workers, write_job  # the same job, run the same way

from cascade.testing import serve_in_subprocess  # after the offline switch above

ROOT = Path(__file__).resolve().parents[1]
RAW = """
import asyncio, gc, os, sys, time
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm
calls, concurrency, base_url, prompt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
freeze, frozen = sys.argv[5] == "freeze", []
async def main():
    gate = asyncio.Semaphore(concurrency)
    async def one(n):
        async with gate:
            await litellm.acompletion(
                model="openai/gpt-4o-mini", api_base=base_url, api_key="sk-fake", timeout=30,
                messages=[{"role": "user", "content": prompt.format(input=f"item {n}")}],
                num_retries=0, max_retries=0)
        if freeze and not frozen:
            frozen.append(True)
            gc.collect()
            gc.freeze()
    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(calls)))
    print(calls / (time.perf_counter() - start))
asyncio.run(main())
"""


def _cpu_of(argv: list[str]) -> tuple[float, str]:
    """Seconds of CPU ``argv`` used (its children included), and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, done.stdout


def raw(base_url: str, calls: int, concurrency: int, *, freeze: bool) -> tuple[float, float]:
    """CPU seconds and calls/s of the plain loop making ``calls`` calls.

    With ``freeze``, the loop freezes its heap after the first answer, as ``cascade run`` does
    (:mod:`cascade.run.heap`): the difference from that loop is the CPU of cascade's own code.
    """
    argv = [sys.executable, "-c", RAW, str(calls), str(concurrency), base_url, PROMPT,
            "freeze" if freeze else "as-is"]  # fmt: skip
    cpu, printed = _cpu_of(argv)
    return cpu, float(printed.strip().splitlines()[-1])


def cascade_run(work: Path, base_url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """CPU seconds and steady attempts/s of ``cascade run --workers 1`` over ``calls`` tasks."""
    write_job(work, base_url, calls)
    store = work / f"run-{calls}-{time.monotonic_ns()}.db"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    count, rate, _ = run_workers(work, 1, concurrency, store)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if count != calls:
        raise SystemExit(f"{count} attempts for {calls} tasks: see {store}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rate


def main() -> None:
    """Run both sides at both sizes, alternating over rounds, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    slopes: dict[str, list[float]] = {
        "plain litellm loop": [],
        "plain loop, heap frozen": [],
        "cascade run --workers 1": [],
    }
    rates: dict[str, list[float]] = {name: [] for name in slopes}
    with serve_in_subprocess(0.05) as base_url, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for _ in range(args.rounds):
            for name, found in slopes.items():
                sizes = []
                for calls in (args.small, args.large):
                    if name.startswith("plain"):
                        frozen = name.endswith("frozen")
                        sizes.append(raw(base_url, calls, args.concurrency, freeze=frozen))
                    else:
                        sizes.append(cascade_run(work, base_url, calls, args.concurrency))
                (cpu_small, _), (cpu_large, rate) = sizes
                found.append((cpu_large - cpu_small) / (args.large - args.small))
                rates[name].append(rate)
    print(f"fake provider 50 ms per answer; {args.small} and {args.large} calls; concurrency "
          f"{args.concurrency}; {args.rounds} rounds; {os.cpu_count()} cores; medians")  # fmt: skip
    plain = statistics.median(slopes["plain litellm loop"])
    plain_rate = statistics.median(rates["plain litellm loop"])
    for name, found in slopes.items():
        cpu, rate = statistics.median(found), statistics.median(rates[name])
        print(
            f"  {name:26} {cpu * 1000:6.2f} ms CPU per attempt   {rate:7.1f}/s "
            f"({rate / plain_rate:.2f}x the plain loop)"
        )
    cascade = statistics.median(slopes["cascade run --workers 1"])
    print(f"  beyond the plain loop: {(cascade - plain) * 1000:.2f} ms CPU per attempt")
    ours = cascade - statistics.median(slopes["plain loop, heap frozen"])
    print(f"  ours (beyond the loop with its heap frozen too): {ours * 1000:.2f} ms CPU per "
          "attempt (target <= 0.3)")  # fmt: skip


if __name__ == "__main__":
    main()

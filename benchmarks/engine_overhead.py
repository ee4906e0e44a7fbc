"""Engine overhead: tasks/s through a 3-tier ladder on a zero-latency scripted backend.

Side by side in one run: the same number of backend calls made directly (the baseline), then
through ``Cascade``. The engine's CPU per attempt is the difference divided by the attempts.
Target: at most 100 µs per attempt.

    .venv/bin/python benchmarks/engine_overhead.py [--tasks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from cascade import Attempt, Cascade, StepLog, Tier, Verdict
from cascade.backends import Request, ScriptedBackend

MODELS = ("small", "mid", "big")
MESSAGES = ({"role": "user", "content": "Extract the contact from: Ada, ada@example.org"},)


def says_ok(attempt: Attempt) -> Verdict:
    """Accept only the big model's answer, so every task climbs all three tiers."""
    return Verdict(attempt.output == "ok", reason="not ok", feedback="say ok")


def backend() -> ScriptedBackend:
    """Zero-latency models: the two cheap ones fail, the big one passes."""
    return ScriptedBackend({"small": ["no"], "mid": ["no"], "big": ["ok"]})


async def direct(tasks: int) -> float:
    """CPU seconds for the backend calls alone, made straight to the backend."""
    scripted = backend()
    start = time.process_time()
    for i in range(tasks):
        for model in MODELS:
            await scripted.complete(Request(model, MESSAGES, task_id=f"t{i}"))
            scripted.calls.clear()
    return time.process_time() - start


async def through_cascade(tasks: int, log: StepLog | bool) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and attempts for the same calls through a Cascade."""
    scripted = backend()
    cascade = Cascade([Tier(m) for m in MODELS], says_ok, backend=scripted, log=log)
    attempts = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(tasks):
        outcome = await cascade.arun({"id": f"t{i}", "messages": list(MESSAGES)})
        attempts += len(outcome.steps)
        scripted.calls.clear()
    return time.process_time() - cpu, time.perf_counter() - wall, attempts


def main() -> None:
    """Print the baseline, the engine with and without its log, and the overhead per attempt."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    tasks = parser.parse_args().tasks
    base_cpu = asyncio.run(direct(tasks))
    calls = tasks * len(MODELS)
    print(f"{tasks} tasks x 3 tiers = {calls} attempts, scripted backend at zero latency")
    print(f"  baseline: backend alone        {base_cpu / calls * 1e6:8.1f} µs CPU per call")
    with open(os.devnull, "w") as null:
        for label, log in (("no step log", False), ("JSON step log", StepLog(null))):
            cpu, wall, attempts = asyncio.run(through_cascade(tasks, log))
            assert attempts == calls, (attempts, calls)
            overhead = (cpu - base_cpu) / attempts * 1e6
            print(
                f"  cascade, {label:14}: {tasks / wall:9.0f} tasks/s, {attempts / wall:9.0f} "
                f"attempts/s, engine overhead {overhead:6.1f} µs CPU per attempt "
                f"({cpu / base_cpu:.1f}x the baseline's CPU)"
            )


if __name__ == "__main__":
    main()

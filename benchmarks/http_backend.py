"""The lean HTTP backend beside litellm's: ``cascade run`` attempts/s, and CPU per call.

A fake OpenAI-compatible provider answering in 50 ms runs in its own process on 127.0.0.1. The
same one-tier job (every answer accepted) runs through ``cascade run`` with ``--workers 1`` and
``--workers 2``, once with the tier on litellm and once with ``backend = "http"``, each in a
fresh store; the steady rate is the store's attempts over the span of their timestamps (as in
``throughput.py``). Beside them, in this process: a bare aiohttp loop making the same calls at
the same concurrency (what any client of that provider could reach), and the CPU each way of
calling spends per call, one call at a time.

    .venv/bin/python benchmarks/http_backend.py [--tasks 8000] [--concurrency 100]

Target (issue 38): at least 2,000 attempts/s with ``--workers 2`` on the lean path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import aiohttp  # after the offline switch above

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import LATENCY_S, MODEL, PROMPT, run_workers, write_job

from cascade.backends.http import HttpBackend
from cascade.backends.litellm import LiteLLMBackend
from cascade.testing import serve_in_subprocess
from cascade.types import Request

CALLS_FOR_CPU = 400


async def bare(base_url: str, calls: int, concurrency: int) -> float:
    """Calls/s of a bare aiohttp loop under a semaphore, in this process: the floor's rate."""
    gate = asyncio.Semaphore(concurrency)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-fake"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(number: int) -> None:
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": PROMPT.format(input=f"item {number}")}],
            }
            async with (
                gate,
                session.post(
                    f"{base_url}/chat/completions", data=json.dumps(body), headers=headers
                ) as answer,
            ):
                json.loads(await answer.read())

        await asyncio.gather(*(one(n) for n in range(50)))  # warm up the pool
        start = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(calls)))
        return calls / (time.perf_counter() - start)


async def cpu_per_call(call: Callable[[], Awaitable[object]]) -> float:
    """Milliseconds of this process's CPU per call, one call at a time (after 30 to warm up)."""
    for _ in range(30):
        await call()
    start = time.process_time()
    for _ in range(CALLS_FOR_CPU):
        await call()
    return (time.process_time() - start) / CALLS_FOR_CPU * 1000


def cpu_rows(base_url: str) -> list[tuple[str, float]]:
    """CPU per call of both backends and of a bare aiohttp session, against a 0 ms provider."""
    request = Request(MODEL, ({"role": "user", "content": "Ada, ada@example.org"},))
    rows = []
    for name, backend in (
        ("litellm backend", LiteLLMBackend(api_base=base_url, api_key="k")),
        ("http backend", HttpBackend(api_base=base_url, api_key="k")),
    ):

        async def through(backend: object = backend) -> float:
            if hasattr(backend, "ready"):
                await backend.ready(MODEL)
            return await cpu_per_call(lambda: backend.complete(request))  # type: ignore[attr-defined]

        rows.append((name, asyncio.run(through())))

    async def with_session() -> float:
        async with aiohttp.ClientSession() as session:

            async def one() -> None:
                async with session.post(
                    f"{base_url}/chat/completions",
                    data=json.dumps({"model": "gpt-4o-mini", "messages": list(request.messages)}),
                ) as answer:
                    json.loads(await answer.read())

            return await cpu_per_call(one)

    rows.append(("bare aiohttp", asyncio.run(with_session())))
    return rows


def main() -> None:
    """Start the fake provider, run both backends with 1 and 2 workers, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=100, help="tasks in flight per worker")
    args = parser.parse_args()
    rates: dict[tuple[str, int], float] = {}
    with serve_in_subprocess(0.0) as quick:
        cpu = cpu_rows(quick)
    with serve_in_subprocess(LATENCY_S) as base_url, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for backend in ("litellm", "http"):
            write_job(work, base_url, args.tasks, backend)
            for workers in (1, 2):
                store = work / f"{backend}-{workers}.db"
                rates[(backend, workers)] = run_workers(work, workers, args.concurrency, store)[1]
        floor = asyncio.run(bare(base_url, args.tasks, args.concurrency))
    print(
        f"fake provider {LATENCY_S * 1000:.0f} ms per answer; {args.tasks} tasks; concurrency "
        f"{args.concurrency} per worker; {os.cpu_count()} cores shared with the provider"
    )
    print(f"{'cascade run':>26} {'attempts/s':>11} {'vs litellm':>11} {'vs bare aiohttp':>16}")
    for workers in (1, 2):
        for backend in ("litellm", "http"):
            rate = rates[(backend, workers)]
            print(
                f"{f'{backend}, --workers {workers}':>26} {rate:>11.1f} "
                f"{rate / rates[('litellm', workers)]:>10.2f}x {rate / floor:>15.2f}x"
            )
    print(f"{'bare aiohttp, 1 process':>26} {floor:>11.1f}")
    print(f"\nCPU per call, one at a time, 0 ms provider ({CALLS_FOR_CPU} calls each)")
    for name, ms in cpu:
        print(f"{name:>26} {ms:>8.3f} ms   {ms / cpu[-1][1]:>5.1f}x bare aiohttp")
    print(f"target: http --workers 2 >= 2000 attempts/s; measured {rates[('http', 2)]:.0f}")


if __name__ == "__main__":
    main()

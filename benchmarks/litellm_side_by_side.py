"""Raw ``litellm.acompletion`` against the same calls through ``Cascade``, side by side.

A fake OpenAI-compatible provider answering in 50 ms runs in its own process on 127.0.0.1. At each
concurrency, the same number of calls is made raw and through a one-tier Cascade with the litellm
backend (which adds our deadline, error mapping, pricing and validation), alternating the order
over rounds. Reported: calls/s for each, the ratio (target: at least 0.9), and the share of the
ideal rate (concurrency / latency).

    .venv/bin/python benchmarks/litellm_side_by_side.py [--calls 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade import Cascade, Tier  # after the offline switch above
from cascade.backends.litellm import LiteLLMBackend, load_litellm
from cascade.testing import serve_in_subprocess

MODEL = "openai/gpt-4o-mini"
LATENCY_S = 0.05
MESSAGES = [{"role": "user", "content": "Extract the contact from: Ada, ada@example.org"}]


async def raw(base_url: str, calls: int, concurrency: int) -> float:
    """Calls/s for bare litellm.acompletion under a semaphore."""
    litellm = load_litellm()
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await litellm.acompletion(
                model=MODEL, messages=MESSAGES, api_base=base_url, api_key="sk-fake",
                timeout=30, num_retries=0, max_retries=0,
            )  # fmt: skip

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return calls / (time.perf_counter() - start)


async def through_cascade(base_url: str, calls: int, concurrency: int) -> float:
    """Calls/s for the same calls as one-tier Cascade tasks, accepting every answer."""
    backend = LiteLLMBackend(api_base=base_url, api_key="sk-fake")
    cascade = Cascade([Tier(MODEL, timeout_s=30)], backend=backend, log=False)
    tasks = ({"id": f"t{i}", "messages": MESSAGES} for i in range(calls))
    start = time.perf_counter()
    done = [o async for o in cascade.amap(tasks, concurrency=concurrency)]
    elapsed = time.perf_counter() - start
    assert all(o.accepted for o in done), {o.status for o in done}
    return calls / elapsed


async def measure(base_url: str, calls: int, rounds: int) -> None:
    """Print one row per concurrency; all in one event loop, alternating which goes first.

    One loop matters: litellm's background logging worker carries its pending tasks over to the
    next event loop, which would bill one side's bookkeeping to the other.
    """
    await raw(base_url, 20, 10)  # warm up: import, client pools, price map
    print(f"{'concurrency':>11} {'calls':>6} {'raw calls/s':>12} {'cascade calls/s':>16} "
          f"{'ratio':>6} {'raw % ideal':>12} {'cascade % ideal':>16}")  # fmt: skip
    for concurrency in (1, 100, 500):
        count = 40 if concurrency == 1 else calls
        raw_rate = cascade_rate = 0.0
        for round_number in range(rounds):
            if round_number % 2 == 0:
                raw_rate = max(raw_rate, await raw(base_url, count, concurrency))
                cascade_rate = max(
                    cascade_rate, await through_cascade(base_url, count, concurrency)
                )
            else:
                cascade_rate = max(
                    cascade_rate, await through_cascade(base_url, count, concurrency)
                )
                raw_rate = max(raw_rate, await raw(base_url, count, concurrency))
        ideal = concurrency / LATENCY_S
        print(
            f"{concurrency:>11} {count:>6} {raw_rate:>12.1f} {cascade_rate:>16.1f} "
            f"{cascade_rate / raw_rate:>6.2f} {raw_rate / ideal:>11.1%} "
            f"{cascade_rate / ideal:>15.1%}"
        )


def main() -> None:
    """Start the fake provider in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with serve_in_subprocess(LATENCY_S) as base_url:
        print(f"fake provider at {base_url}, {LATENCY_S * 1000:.0f} ms per answer, {MODEL}")
        asyncio.run(measure(base_url, args.calls, args.rounds))


if __name__ == "__main__":
    main()

"""What the local model's own process costs per call, against llama.cpp in this process.

The same requests to Gemma 3 270M, interleaved round by round: in this process
(``cascade.backends.llama_child.Model``, as the backend worked before), and through
``LocalBackend``, which asks the model's process over a pipe. Both load the model once, before
timing. Two answer lengths: 1 token (the hop's cost shows most) and 32 tokens (a short answer).

    .venv/bin/python benchmarks/local_process.py [--calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

# The two ways share the cores in turn: neither's OpenMP threads may spin while the other runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "0")

from cascade.backends import LocalBackend
from cascade.backends.base import Request
from cascade.backends.llama_child import Model
from cascade.backends.local import model_file

MODEL = "local/gemma-3-270m"
TEXT = "Please loop in Henrik Ito from Lumen Analytics (henrik.ito@lumenanalytics.ai) today."


async def rounds(
    inside: Model, backend: LocalBackend, request: Request, calls: int
) -> tuple[list[float], list[float]]:
    """Seconds per call each way, one of each per round, in one event loop."""
    messages, kwargs = [dict(m) for m in request.messages], dict(request.params)
    await backend.complete(request)  # start the process and load the model
    inside.complete(messages, kwargs)
    here: list[float] = []
    hop: list[float] = []
    for _ in range(calls):
        start = time.perf_counter()
        inside.complete(messages, kwargs)
        here.append(time.perf_counter() - start)
        start = time.perf_counter()
        await backend.complete(request)
        hop.append(time.perf_counter() - start)
    return here, hop


def main() -> None:
    """Print the median milliseconds per call each way, the difference and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20)
    calls = parser.parse_args().calls
    prompt = f"Extract the contact as JSON.\n\n{TEXT}"
    threads = os.cpu_count() or 1
    path = str(model_file("gemma-3-270m"))
    inside = Model(path, n_ctx=2048, n_threads=threads, seed=0, chat_format="gemma")
    with LocalBackend(n_threads=threads) as backend:
        for max_tokens in (1, 32):
            params = {"max_tokens": max_tokens, "temperature": 0.0}
            request = Request(MODEL, ({"role": "user", "content": prompt},), params=params)
            here, hop = asyncio.run(rounds(inside, backend, request, calls))
            a, b = statistics.median(here) * 1e3, statistics.median(hop) * 1e3
            print(
                f"max_tokens={max_tokens:3}: in process {a:7.2f} ms/call, own process"
                f" {b:7.2f} ms/call: +{b - a:5.2f} ms ({b / a:4.2f}x), median of {calls}"
            )
    inside.close()


if __name__ == "__main__":
    main()

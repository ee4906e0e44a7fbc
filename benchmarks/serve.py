"""``cascade serve`` side by side: the latency it adds, and its throughput against ``cascade run``.

A fake OpenAI-compatible provider answering in 50 ms runs in its own process on 127.0.0.1, and
the policy has one tier (every answer accepted), as in ``throughput.py``; the tier runs on
litellm, and again with ``backend = "http"`` (the lean path, ``cascade/backends/http.py``).

- **Latency added.** One client (httpx, keep-alive) asks ``--latency-requests`` times,
  going round the provider directly, a bare pass-through proxy on the same stack
  (``serve_floor.py``: Starlette, uvicorn, aiohttp, nothing else: the floor of any proxy
  here), and ``cascade serve --workers 1`` with each backend, one request at a time; the p50
  and p95 of each and their difference from the direct call are printed.
- **Throughput.** 64 clients at once (a lean keep-alive load generator on asyncio streams, so
  the client's own CPU is small next to the server's) send ``--requests`` requests to
  ``cascade serve`` with 1 and then 2 workers; the steady rate is counted over the middle 80 %
  of the answers. Beside them, ``cascade run --concurrency 64`` runs the same number of tasks
  with 1 and 2 workers on the same backend (its steady rate from the store's timestamps, as
  ``throughput.py``).

    .venv/bin/python benchmarks/serve.py [--requests 3000] [--latency-requests 300] [--rounds 3]

Targets: at most 2 ms added at p50; serve's requests/s at least 0.8 times run's tasks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # after the offline switch above

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import run_workers, write_job  # the same job, the same run

from cascade.backends.litellm import load_litellm
from cascade.testing import serve_in_subprocess

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 64
BACKENDS = ("litellm", "http")
BODY = {"model": "cascade/contact", "messages": [{"role": "user", "content": "Ada, ada@x.org"}]}
DIRECT = {**BODY, "model": "gpt-4o-mini"}


@contextmanager
def serving(work: Path, workers: int) -> Iterator[str]:
    """``cascade serve`` on ``work``'s policy with ``workers`` processes; yields its base URL."""
    store = work / f"served-{workers}-{time.monotonic_ns()}.db"
    process = subprocess.Popen(  # our own command
        [sys.executable, "-m", "cascade.cli", "serve", "--policy", str(work / "contact.toml"),
         "--port", "0", "--store", str(store), "--workers", str(workers)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None  # asked for
        url = process.stdout.readline().split()[2]
        _wait_up(url.removesuffix("/v1") + "/health", "get")
        yield url
    finally:
        process.terminate()
        process.wait(60)
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def floor(upstream: str) -> Iterator[str]:
    """The bare pass-through proxy (``serve_floor.py``) in front of ``upstream``; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(__file__).resolve().parent / "serve_floor.py"
    process = subprocess.Popen([sys.executable, str(script), upstream, str(port)])  # our own
    try:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_up(f"{url}/chat/completions", "post")
        yield url
    finally:
        process.terminate()
        process.wait(60)


def _wait_up(url: str, method: str) -> None:
    """Wait for a server to answer 200 (every serve worker imports what it needs first)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.request(method, url, json=DIRECT).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not start"
        time.sleep(0.2)


def latency(
    targets: dict[str, tuple[str, Mapping[str, object]]], count: int
) -> dict[str, list[float]]:
    """Seconds per request of each target (base URL, body), going round them one at a time."""
    took: dict[str, list[float]] = {name: [] for name in targets}
    with httpx.Client(timeout=30) as client:
        for n in range(count + 20):
            for name, (url, body) in targets.items():
                start = time.perf_counter()
                response = client.post(f"{url}/chat/completions", json=body)
                spent = time.perf_counter() - start
                assert response.status_code == 200, response.text
                if n >= 20:  # the first few warm up the connections and each backend's paths
                    took[name].append(spent)
    return took


async def _client(
    host: str, port: int, path: str, queue: asyncio.Queue[int], done: list[float]
) -> None:
    """One keep-alive connection asking until the queue is empty."""
    reader, writer = await asyncio.open_connection(host, port)
    payload = json.dumps(BODY).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()  # fmt: skip
    try:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            writer.write(head + payload)
            status = await reader.readline()
            assert b" 200 " in status, status
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            done.append(time.perf_counter())
    finally:
        writer.close()


async def _load(url: str, requests: int) -> float:
    parts = urlsplit(url)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    done: list[float] = []
    path = parts.path + "/chat/completions"
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    await asyncio.gather(*(_client(host, port, path, queue, done) for _ in range(CONCURRENCY)))
    done.sort()
    low, high = done[len(done) // 10], done[len(done) * 9 // 10]
    return (len(done) * 8 // 10) / (high - low)


async def _through_litellm(upstream: str, count: int) -> list[float]:
    """Seconds per call of litellm.acompletion alone, one at a time: its own share of the cost."""
    litellm = load_litellm()
    took = []
    for n in range(count + 20):
        start = time.perf_counter()
        await litellm.acompletion(model="openai/gpt-4o-mini", messages=BODY["messages"],
                                  api_base=upstream, api_key="sk-fake", timeout=30,
                                  num_retries=0, max_retries=0)  # fmt: skip
        if n >= 20:
            took.append(time.perf_counter() - start)
    return took


def throughput(url: str, requests: int) -> float:
    """Steady requests per second from 64 clients at once."""
    return asyncio.run(_load(url, requests))


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def _row(name: str, values: list[float]) -> str:
    return f"  {name:<26} p50 {_p(values, 0.5):7.2f} ms   p95 {_p(values, 0.95):7.2f} ms"


def main() -> None:
    """Run every measurement and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (median shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, serve_in_subprocess(0.05) as upstream:
        works = {backend: Path(folder) / backend for backend in BACKENDS}
        for backend, work in works.items():
            work.mkdir()
            write_job(work, upstream, args.requests, None if backend == "litellm" else backend)
        with (floor(upstream) as bare, serving(works["litellm"], 1) as on_litellm,
              serving(works["http"], 1) as on_http):  # fmt: skip
            targets: dict[str, tuple[str, Mapping[str, object]]] = {
                "direct to the provider": (upstream, DIRECT),
                "bare proxy (the floor)": (bare, DIRECT),
                "cascade serve, litellm": (on_litellm, BODY),
                "cascade serve, http": (on_http, BODY),
            }
            took = latency(targets, args.latency_requests)
        alone = asyncio.run(_through_litellm(upstream, args.latency_requests))
        direct = took["direct to the provider"]
        print(f"latency, one request at a time ({args.latency_requests} each, 50 ms provider)")
        for name, values in took.items():
            added = "" if values is direct else (
                f"   added p50 {_p(values, 0.5) - _p(direct, 0.5):6.2f} ms"
                f"  p95 {_p(values, 0.95) - _p(direct, 0.95):6.2f} ms")  # fmt: skip
            print(_row(name, values) + added)
        print(_row("litellm.acompletion alone", alone)
              + f"   added p50 {_p(alone, 0.5) - _p(direct, 0.5):6.2f} ms")  # fmt: skip
        print("  target: cascade serve adds at most 2 ms at p50")
        rates: dict[tuple[str, str, int], list[float]] = {}
        for _ in range(args.rounds):
            for backend, work in works.items():
                for workers in (1, 2):
                    with serving(work, workers) as url:
                        throughput(url, CONCURRENCY * 4)  # warm every worker's connections
                        rate = throughput(url, args.requests)
                        rates.setdefault(("serve", backend, workers), []).append(rate)
                    # the same 64 in flight in all: 64 per worker with one, 32 each with two
                    store = work / f"run-{workers}-{time.monotonic_ns()}.db"
                    _, rate, _ = run_workers(work, workers, CONCURRENCY // workers, store)
                    rates.setdefault(("run", backend, workers), []).append(rate)
        print(f"\nthroughput, {CONCURRENCY} at once, {args.requests} requests or tasks, "
              f"median of {args.rounds} rounds")  # fmt: skip
        for backend in works:
            for workers in (1, 2):
                serve = statistics.median(rates[("serve", backend, workers)])
                run = statistics.median(rates[("run", backend, workers)])
                print(f"  {backend:>7}, {workers} worker(s): cascade serve {serve:7.1f}/s   "
                      f"cascade run {run:7.1f}/s   serve/run {serve / run:4.2f}"
                      "  (target >= 0.8)")  # fmt: skip
        print(f"  ideal {CONCURRENCY / 0.05:.0f}/s ({CONCURRENCY} at once / 50 ms); "
              f"{os.cpu_count()} cores shared with the provider and the load")  # fmt: skip


if __name__ == "__main__":
    main()

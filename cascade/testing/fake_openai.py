"""A fake OpenAI-compatible provider: a real HTTP server on 127.0.0.1, scriptable per request.

It serves ``POST /v1/chat/completions`` and can be made slow, rate-limited (429 with
``Retry-After``), broken (5xx, malformed JSON, a truncated body, a dropped connection) or down.
The handler gets each decoded request body and returns the :class:`FakeReply` to send:

>>> with FakeOpenAI(lambda body: FakeReply(content="hi")) as server:
...     server.base_url.startswith("http://127.0.0.1:")
True

In your own tests, start one per test (or per module) as a fixture, and point the tier at it
with an ``openai/`` model, ``api_base`` and any key::

    @pytest.fixture
    def provider() -> Iterator[FakeOpenAI]:
        with FakeOpenAI(lambda body: FakeReply(status=429, headers={"Retry-After": "1"})) as fake:
            yield fake

    def test_a_rate_limit_is_waited_out(provider: FakeOpenAI) -> None:
        params = {"api_base": provider.base_url, "api_key": "sk-fake"}
        tier = Tier("openai/gpt-4o-mini", params=params, price=Price(0.15, 0.6))
        ...  # run your cascade; provider.requests holds every body it received

``stop()`` (or leaving the ``with``) shuts it down; ``start()`` returns the base URL when
used without ``with``. To serve from another process (for benchmarks), run
``python -m cascade.testing --latency 0.05``: it prints its base URL and serves until killed.
:func:`serve_in_subprocess` does that and hands back the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any

from cascade.testing.fake_batches import FakeBatches

__all__ = ["FakeOpenAI", "FakeReply", "main", "serve_in_subprocess"]


@dataclass(frozen=True, slots=True)
class FakeReply:
    """How the fake answers one request.

    ``body`` replaces the JSON completion with raw bytes (malformed JSON, say);
    ``truncate`` announces the full length but sends only half of the body;
    ``drop`` closes the connection without answering; ``echo_key`` puts the request's key in
    the error message, as some providers do on a 401. ``tool_calls`` (``{"name": ...,
    "arguments": {...}}`` each) answers with function calls instead of ``content``.
    """

    content: str = "ok"
    status: int = 200
    delay_s: float = 0.0
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    body: bytes | None = None
    truncate: bool = False
    drop: bool = False
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    echo_key: bool = False
    tool_calls: tuple[Mapping[str, Any], ...] = ()


Handler = Callable[[dict[str, Any]], FakeReply]


def _completion(request: dict[str, Any], reply: FakeReply) -> bytes:
    prompt = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
    completion_tokens = (
        reply.completion_tokens
        if reply.completion_tokens is not None
        else len(reply.content.split())
    )
    finish = "tool_calls" if reply.tool_calls else "stop"
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or request.get("model", "fake"),
            "choices": [{"index": 0, "message": _message(reply), "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    ).encode()


def _message(reply: FakeReply) -> dict[str, Any]:
    if not reply.tool_calls:
        return {"role": "assistant", "content": reply.content}
    calls = [
        {"id": f"call_{i}", "type": "function",
         "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
        for i, c in enumerate(reply.tool_calls)
    ]  # fmt: skip
    return {"role": "assistant", "content": None, "tool_calls": calls}


class FakeOpenAI:
    """Serve chat completions on 127.0.0.1 from a background thread.

    ``handler`` decides each reply from the decoded request body; the default answers ``ok``
    after ``latency_s``. Every request body is kept in ``requests``.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        latency_s: float = 0.0,
        batches: FakeBatches | None = None,
    ) -> None:
        self._handler = handler or (lambda _body: FakeReply(delay_s=latency_s))
        self.requests: list[dict[str, Any]] = []
        self.heads: list[tuple[str, str, dict[str, str]]] = []
        """Each chat request's method, path and headers (names in lower case)."""
        self.batches = batches or FakeBatches()
        """The files and batches endpoints (``/v1/files``, ``/v1/batches``)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    def _answer(self, body: dict[str, Any]) -> tuple[int, bytes]:
        """A batch item's answer: what the chat handler says, without its delay."""
        reply = self._handler(body)
        if reply.status != 200:
            return reply.status, json.dumps(
                {"error": {"message": f"fake error {reply.status}"}}
            ).encode()
        return 200, _completion(body, reply)

    @property
    def base_url(self) -> str:
        """The URL to pass as ``api_base``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start serving; returns the base URL."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake provider did not start within 10 s")
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port, backlog=1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs every connection in a task
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the server is shutting down
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request on a kept-alive connection; False when the connection is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        length, key = 0, ""
        first, *rest = head.decode("latin-1").split("\r\n")
        method, _, path = first.partition(" ")
        headers: dict[str, str] = {}
        for line in rest:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "authorization":
                key = value.strip().removeprefix("Bearer ")
        raw = await reader.readexactly(length) if length else b"{}"
        routed = self.batches.handle(method, path.split(" ")[0], headers, raw, self._answer)
        if routed is not None:
            return await _send(writer, *routed)
        body = json.loads(raw or b"{}")
        self.requests.append(body)
        self.heads.append((method, path.split(" ")[0], headers))
        reply = self._handler(body)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.drop:
            return False
        payload = reply.body if reply.body is not None else _completion(body, reply)
        if reply.status != 200 and reply.body is None:
            message = f"fake error {reply.status}"
            if reply.echo_key:
                message = f"Incorrect API key provided: {key}. You can find your key at ..."
            payload = json.dumps({"error": {"message": message}}).encode()
        headers = {"Content-Type": "application/json", **reply.headers}
        lines = [f"HTTP/1.1 {reply.status} FAKE", f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        writer.write(payload[: len(payload) // 2] if reply.truncate else payload)
        await writer.drain()
        return not reply.truncate


async def _send(writer: asyncio.StreamWriter, status: int, payload: bytes) -> bool:
    lines = [f"HTTP/1.1 {status} FAKE", f"Content-Length: {len(payload)}",
             "Content-Type: application/json"]  # fmt: skip
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    return True


@contextlib.contextmanager
def serve_in_subprocess(latency_s: float) -> Iterator[str]:
    """Serve from a process of its own (so it does not share our CPU); yields the base URL."""
    server = subprocess.Popen(  # noqa: S603  # our own module
        [sys.executable, "-m", "cascade.testing", "--latency", str(latency_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None  # we asked for a pipe
        yield server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait()


def main() -> None:
    """Serve until killed, printing the base URL first (for benchmarks in another process)."""
    parser = argparse.ArgumentParser(prog="python -m cascade.testing", description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeOpenAI(latency_s=args.latency)
    server.port = args.port
    print(server.start(), flush=True)  # noqa: T201  # the URL is this program's output
    threading.Event().wait()

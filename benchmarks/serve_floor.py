"""The floor under ``cascade serve``'s added latency: a bare pass-through proxy on the same stack.

Starlette on uvicorn (httptools), forwarding each body to the provider over one pooled aiohttp
session and returning the answer unread: no validation, no store, no engine. What it adds to a
request is what any proxy on this stack adds on this machine. ``benchmarks/serve.py`` starts it.

    .venv/bin/python benchmarks/serve_floor.py UPSTREAM_BASE_URL PORT
"""

from __future__ import annotations

import sys

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def app(upstream: str) -> Starlette:
    """A proxy of ``POST /v1/chat/completions`` to ``upstream``."""
    sessions: list[aiohttp.ClientSession] = []

    async def chat(request: Request) -> Response:
        if not sessions:
            sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-fake"}
        url = f"{upstream}/chat/completions"
        async with sessions[0].post(url, data=await request.body(), headers=headers) as answer:
            return Response(await answer.read(), answer.status, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def main() -> None:
    """Serve on 127.0.0.1:PORT until killed."""
    upstream, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(app(upstream), host="127.0.0.1", port=port, log_level="error", http="httptools",
                access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()

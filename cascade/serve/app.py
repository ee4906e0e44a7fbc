"""The HTTP side of ``cascade serve``: a Starlette app speaking OpenAI's Chat Completions API.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models`` (one model per policy,
``cascade/<task_type>``) and ``GET /health``. Every request but the health check needs a
client key when the server has any (401 otherwise, before anything is read or called). Bodies
over the size limit get a 413; malformed JSON, an unknown model and bad parameters a 400, all
in OpenAI's error shape. The work itself is the :class:`~cascade.serve.service.Service`'s.

With ``stream: true``, the answer is streamed as server-sent events *after* it was accepted:
validators judge a whole answer, so nothing is sent before the ladder is done. A request whose
ladder ends without an accepted answer gets an error, streamed or not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cascade.serve.chat import MODEL_PREFIX, BadRequest, ChatRequest, RequestLimits, read_request
from cascade.serve.keys import ClientKey, KeyRing
from cascade.serve.replies import Reply, error_body, sse_chunks
from cascade.serve.service import Service

__all__ = ["build_app"]

Opener = Callable[[], contextlib.AbstractAsyncContextManager[Service]]
"""Opens a worker's service at start-up and closes it at shutdown."""


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status, headers, media_type="application/json")


def _error(status: int, message: str, kind: str, **more: Any) -> Response:
    return _json(status, error_body(message, kind, **more))


class _TooLarge(Exception):  # the 413 it becomes
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The request body, read no further than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reply(reply: Reply) -> Response:
    if reply.stream and reply.status == 200:

        async def events() -> AsyncIterator[bytes]:
            for chunk in sse_chunks(reply.body, include_usage=reply.include_usage):
                yield chunk

        headers = {**reply.headers, "cache-control": "no-cache"}
        return StreamingResponse(events(), headers=headers, media_type="text/event-stream")
    return _json(reply.status, reply.body, reply.headers)


def _authorized(keys: KeyRing, request: Request) -> tuple[bool, ClientKey | None]:
    """Whether the request may go on, and whose key it carries (none asked: no keys)."""
    if not keys:
        return True, None
    found = keys.find(request.headers.get("authorization"))
    return found is not None, found


def _unauthorized() -> Response:
    return _json(401, error_body("a valid client key is required: Authorization: Bearer KEY",
                                 "invalid_request_error", code="invalid_api_key"),
                 {"www-authenticate": "Bearer"})  # fmt: skip


async def _failed(_: Request, exc: Exception) -> Response:
    """Anything unforeseen: a 500 in OpenAI's shape (redacted), never a traceback."""
    logging.getLogger("cascade").error("cascade serve: a request failed", exc_info=exc)
    return _error(500, f"the server failed: {type(exc).__name__}: {exc}", "server_error")


async def _chat_request(
    request: Request, limits: RequestLimits, task_types: Collection[str]
) -> tuple[ChatRequest, bytes] | Response:
    """The request read and checked, with its raw body; or the error to answer it with."""
    try:
        raw = await _body(request, limits.max_body_bytes)
    except _TooLarge:
        return _error(413, f"the request body is over this server's limit of "
                      f"{limits.max_body_bytes} bytes", "invalid_request_error")  # fmt: skip
    except ClientDisconnect:
        return Response(status_code=499)
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return _error(400, f"the request body is not valid JSON: {exc}", "invalid_request_error")
    try:
        return read_request(decoded, task_types, limits), raw
    except BadRequest as exc:
        return _error(400, exc.message, "invalid_request_error", param=exc.param,
                      code=exc.code)  # fmt: skip


def build_app(keys: KeyRing, limits: RequestLimits, opener: Opener) -> Starlette:
    """The app: ``opener`` opens the service when the server starts, and closes it at the end."""
    state: dict[str, Service] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with opener() as service:
            state["service"] = service
            yield

    def authorized(request: Request) -> tuple[bool, ClientKey | None]:
        return _authorized(keys, request)

    async def chat(request: Request) -> Response:
        allowed, client = authorized(request)
        if not allowed:
            return _unauthorized()
        service = state["service"]
        read = await _chat_request(request, limits, service.task_types)
        if isinstance(read, Response):
            return read
        chat_request, raw = read
        idem_key = request.headers.get("idempotency-key")
        digest = hashlib.sha256(raw).hexdigest()
        return _reply(await service.serve(chat_request, client, idem_key, digest))

    async def models(request: Request) -> Response:
        allowed, _ = authorized(request)
        if not allowed:
            return _unauthorized()
        kinds = sorted(state["service"].task_types)
        data = [{"id": MODEL_PREFIX + kind, "object": "model", "created": 0,
                 "owned_by": "cascade"} for kind in kinds]  # fmt: skip
        return _json(200, {"object": "list", "data": data})

    async def health(_: Request) -> Response:
        service = state.get("service")
        if service is None:
            return _json(503, {"status": "starting"})
        models = sorted(MODEL_PREFIX + kind for kind in service.task_types)
        return _json(200, {"status": "ok", "in_flight": service.in_flight, "models": models})

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: _failed})

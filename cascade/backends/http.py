"""The lean backend: OpenAI-compatible tiers (``backend = "http"``) called straight over aiohttp.

litellm spends about 4 ms of CPU on every call here (it builds the request in a worker
thread, then runs its logging and cost hooks); a pooled aiohttp session spends about 0.25 ms.
For a tier whose provider speaks the Chat Completions API, that is most of what a run or
``cascade serve`` pays per call. litellm stays the default, and the path for every other
provider.

Models it serves:

- ``openai/NAME`` (or a bare ``NAME``) at the tier's ``api_base``, else ``OPENAI_BASE_URL`` or
  ``OPENAI_API_BASE``, else OpenAI: OpenAI itself, vLLM, llama.cpp's server, Ollama's ``/v1``, any
  server of the Chat Completions API. The key is ``api_key``, else ``OPENAI_API_KEY``; a server
  that needs none gets no ``Authorization`` header.
- ``azure/DEPLOYMENT`` at ``api_base`` (``AZURE_API_BASE``) and ``api_version``
  (``AZURE_API_VERSION``), with the key (``AZURE_API_KEY``) in the ``api-key`` header.

The tier's other ``params`` go into the request body as they are. Failures map onto
:mod:`cascade.errors` as litellm's do (a 429's ``Retry-After`` included), each call is priced
from litellm's own price map (:mod:`cascade.backends.cost_map`, read without importing litellm)
unless the tier sets a price, and the engine redacts keys from whatever a provider echoes.
Batch tiers are litellm's: a tier cannot be both (:class:`~cascade.Tier` refuses it).
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from cascade.backends.answer import calls_text
from cascade.backends.base import Request, Response
from cascade.backends.cost_map import TIERED, entry, quote_of, rate_of
from cascade.errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    UnknownModel,
    UnpricedModel,
    parse_retry_after,
)
from cascade.types import Price, Quote, Usage

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpBackend", "http_model_problem"]

_OPENAI = "https://api.openai.com/v1"
_AGENT = "cascade-http/1"
"""The lean path's ``User-Agent``: a provider's logs (and the tests) tell its calls apart."""
_CONNECTION = frozenset({"api_base", "api_key", "api_version", "organization", "extra_headers"})
"""Tier params that say where and as whom to call: never sent in the body."""


def http_model_problem(model: str) -> str | None:
    """Why ``model`` cannot go over the lean HTTP path, or None when it can.

    >>> http_model_problem("openai/gpt-4o-mini") is None
    True
    >>> http_model_problem("anthropic/claude-3-5-haiku")[-48:]
    'azure/... models, not anthropic/claude-3-5-haiku'
    """
    provider, slash, _ = model.partition("/")
    if not slash or provider in ("openai", "azure"):
        return None
    return ("backend = 'http' calls the Chat Completions API: openai/... or azure/... models, "
            f"not {model}")  # fmt: skip


class HttpBackend:
    """Complete requests over one pooled aiohttp session per event loop.

    ``defaults`` are sent with every call (``api_base``, ``api_key`` and the like); a tier's
    ``params`` override them. A session is closed when its event loop shuts down
    (``asyncio.run`` and uvicorn close a loop's async generators, and one of them holds it).
    """

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncIterator[None]]
        ] = weakref.WeakKeyDictionary()
        self._loaded = False

    def __repr__(self) -> str:
        return "HttpBackend()"

    async def complete(self, request: Request) -> Response:
        """Complete ``request`` over HTTP; raise a :class:`ProviderError` on failure."""
        problem = http_model_problem(request.model)
        if problem is not None:
            raise UnknownModel(problem)
        price = request.price or self._price(request.model)
        params = {**self._defaults, **request.params}
        url, headers, name = _where(request.model, params)
        body = {key: value for key, value in params.items() if key not in _CONNECTION}
        body = {"model": name, "messages": [dict(m) for m in request.messages], **body}
        payload = json.dumps(body, default=_plain).encode()
        status, raw, said = await self._post(url, headers, payload, request.timeout_s)
        if status != 200:
            raise _refused(status, raw, said)
        text, usage, served = _read(raw)
        return Response(text, served or request.model, usage, price.cost(usage))

    async def _post(
        self, url: str, headers: Mapping[str, str], payload: bytes, timeout_s: float
    ) -> tuple[int, bytes, Mapping[str, str]]:
        import aiohttp  # noqa: PLC0415  # in the lock through litellm; loaded by the first call

        session = await self._session()
        try:
            async with session.post(
                url, data=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as answer:
                return answer.status, await answer.read(), answer.headers
        except TimeoutError as exc:
            raise ProviderTimeout(f"no answer within {timeout_s:g} s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise ConnectionFailed(f"the connection was cut inside the answer: {exc}") from exc
        except aiohttp.ClientConnectionError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise MalformedResponse(f"{type(exc).__name__}: {exc}") from exc

    async def _session(self) -> aiohttp.ClientSession:
        """The running loop's session, made on its first call, closed when the loop shuts down."""
        import aiohttp  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        held = self._sessions.get(loop)
        if held is None or held[0].closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                skip_auto_headers=("User-Agent",),
            )
            keeper = _holding(session)
            await anext(keeper)  # the loop now closes it at shutdown (shutdown_asyncgens)
            held = session, keeper
            self._sessions[loop] = held
        return held[0]

    async def ready(self, model: str) -> None:
        """Import aiohttp and read the price map off the event loop, once (about 0.1 s)."""
        del model
        if not self._loaded:
            await asyncio.to_thread(_load)
            self._loaded = True

    def quote(self, model: str) -> Quote | None:
        """The model's price per token and its longest answer; None when this path cannot bill it.

        A model priced by context length has no quote here: its calls are refused unpriced.
        """
        info = entry(model)
        rate = rate_of(info) if info is not None else None
        if info is None or rate is None or rate is TIERED:
            return None
        return quote_of(info)

    def _price(self, model: str) -> Price:
        info = entry(model)
        rate = rate_of(info) if info is not None else None
        if rate is None:
            raise UnpricedModel(
                f"litellm's price map has no price for {model!r}; set a price on the tier"
            )
        if rate is TIERED:
            raise UnpricedModel(
                f"{model!r} is priced by context length, which backend = 'http' does not bill: "
                "set a price on the tier, or use litellm"
            )
        return rate

    def close(self) -> None:
        """Close the sessions of event loops that are neither running nor closed."""
        for loop, (session, keeper) in list(self._sessions.items()):
            if not loop.is_closed() and not loop.is_running() and not session.closed:
                loop.run_until_complete(keeper.aclose())  # type: ignore[attr-defined]
        self._sessions.clear()


def _load() -> None:
    """What the first call would otherwise pay on the event loop: aiohttp, and the price map."""
    import aiohttp  # noqa: F401, PLC0415

    entry("")


async def _holding(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    """Hold ``session`` open until the event loop shuts its async generators down."""
    try:
        yield
        await asyncio.Event().wait()  # never resumed: only closed
    finally:
        await session.close()


def _where(model: str, params: dict[str, Any]) -> tuple[str, dict[str, str], str]:
    """The URL, headers and model name of a call to ``model``."""
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "User-Agent": _AGENT}  # fmt: skip
    extra = params.get("extra_headers")
    if isinstance(extra, Mapping):
        headers.update({str(k): str(v) for k, v in extra.items()})
    provider, slash, name = model.partition("/")
    if not slash:
        provider, name = "openai", model
    if provider == "azure":
        base = params.get("api_base") or os.environ.get("AZURE_API_BASE")
        version = params.get("api_version") or os.environ.get("AZURE_API_VERSION")
        if not base or not version:
            raise BadRequest(f"{model}: an azure tier needs api_base and api_version "
                             "(or AZURE_API_BASE and AZURE_API_VERSION)")  # fmt: skip
        key = params.get("api_key") or os.environ.get("AZURE_API_KEY")
        if key:
            headers["api-key"] = str(key)
        url = f"{str(base).rstrip('/')}/openai/deployments/{name}/chat/completions"
        return f"{url}?api-version={version}", headers, name
    base = (params.get("api_base") or os.environ.get("OPENAI_BASE_URL")
            or os.environ.get("OPENAI_API_BASE") or _OPENAI)  # fmt: skip
    key = params.get("api_key") or os.environ.get("OPENAI_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    elif base == _OPENAI:
        raise AuthenticationFailed(f"{model}: no API key: set OPENAI_API_KEY or the tier's api_key")
    if params.get("organization"):
        headers["OpenAI-Organization"] = str(params["organization"])
    return f"{str(base).rstrip('/')}/chat/completions", headers, name


def _plain(value: object) -> object:
    """JSON for what ``json`` cannot write itself: a tier's frozen mappings, say."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _refused(status: int, raw: bytes, headers: Mapping[str, str]) -> ProviderError:
    """The error for an answer other than 200, as litellm's mapping would make it."""
    message = f"HTTP {status}: {_said(raw)}"
    if status == 429:
        after = headers.get("Retry-After")
        return RateLimited(message, parse_retry_after(after) if after is not None else None)
    if status in (401, 403):
        return AuthenticationFailed(f"the provider refused the credentials ({status}): {message}")
    if status == 404:
        return UnknownModel(message)
    if status == 408:
        return ProviderTimeout(message)
    if status >= 500:
        return ServerError(message)
    if status >= 400:
        return BadRequest(f"the provider refused the request ({status}): {message}")
    return MalformedResponse(message)


def _said(raw: bytes) -> str:
    """What an error answer says: its ``error.message``, else the start of its body."""
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = raw[:300].decode("utf-8", "replace")
    return str(message)[:400]


def _read(raw: bytes) -> tuple[str, Usage, str]:
    """A completion's text (its tool calls as JSON, when it made some), usage and model."""
    try:
        completion = json.loads(raw)
        message = completion["choices"][0]["message"]
        usage = completion.get("usage") or {}
        counted = Usage(int(usage.get("prompt_tokens") or 0),
                        int(usage.get("completion_tokens") or 0))  # fmt: skip
        served = str(completion.get("model") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedResponse(f"completion has no usable choice or usage: {exc}") from exc
    calls = message.get("tool_calls") if isinstance(message, Mapping) else None
    if calls:
        try:
            pairs = [(c["function"]["name"], c["function"].get("arguments")) for c in calls]
        except (KeyError, TypeError, AttributeError) as exc:
            problem = f"a tool call has no function name or arguments: {exc}"
            raise MalformedResponse(problem) from exc
        return calls_text(pairs), counted, served
    text = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(text, str):
        raise MalformedResponse(f"completion content is {type(text).__name__}, not text")
    return text, counted, served

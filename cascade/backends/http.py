"""The lean backend: OpenAI-compatible tiers (``backend = "http"``) called straight over aiohttp.

litellm spends 3 to 5 ms of CPU on every call here (it builds the request in a worker
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

The tier's other ``params`` go into the request body (``extra_body`` merged in, as the OpenAI
SDK does; litellm's own settings refused). Failures map onto :mod:`cascade.errors` as litellm's
do (a 429's ``Retry-After`` included), each call is priced from litellm's own price map
(:class:`~cascade.backends.cost_map.PriceMap`, read without importing litellm) unless the tier
sets a price, proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``, read at a
host's first call) as with litellm, and the engine redacts keys from whatever a provider
echoes. Batch tiers are litellm's: a tier cannot be both (:class:`~cascade.Tier` refuses it).

A session lives as long as its event loop: ``asyncio.run`` and uvicorn close a loop's async
generators when they shut it down, and one of them holds the session. A loop run by hand
should end with ``loop.run_until_complete(loop.shutdown_asyncgens())``, or
:meth:`HttpBackend.close` be called before the loop is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from cascade.backends.allowed import check_allowed
from cascade.backends.base import Request, Response
from cascade.backends.cost_map import TIERED, PriceMap, quote_of, rate_of
from cascade.backends.http_wire import body_of, model_problem, read, refused, where
from cascade.errors import (
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    ProviderTimeout,
    UnknownModel,
    UnpricedModel,
)
from cascade.secrets import secret_values
from cascade.types import Price, Quote

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpBackend"]

_Held = tuple["aiohttp.ClientSession", AsyncGenerator[None, None]]


class HttpBackend:
    """Complete requests over one pooled aiohttp session per event loop.

    ``defaults`` are sent with every call (``api_base``, ``api_key`` and the like); a tier's
    ``params`` override them.
    """

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._sessions: dict[asyncio.AbstractEventLoop, _Held] = {}
        self._prices = PriceMap()
        self._proxies: dict[str, tuple[Any, Any]] = {}
        self._loaded = False

    def __repr__(self) -> str:
        return "HttpBackend()"

    async def complete(self, request: Request) -> Response:
        """Complete ``request`` over HTTP; raise a :class:`ProviderError` on failure."""
        problem = model_problem(request.model)
        if problem is not None:
            raise UnknownModel(problem)
        price = request.price or self._price(request.model)
        params = {**self._defaults, **request.params}
        check_allowed(request.model, params)
        url, headers, name = where(request.model, params)
        payload = body_of(name, request.messages, params)
        status, raw, said = await self._post(url, headers, payload, request.timeout_s)
        hide = tuple(secret_values(params))
        if status != 200:
            raise refused(status, raw, said, hide)
        text, usage, served = read(raw, hide)
        return Response(text, served or request.model, usage, price.cost(usage))

    async def _post(
        self, url: str, headers: Mapping[str, str], payload: bytes, timeout_s: float
    ) -> tuple[int, bytes, Mapping[str, str]]:
        import aiohttp  # noqa: PLC0415  # in the lock through litellm; loaded by ready()

        session = await self._session()
        proxy, proxy_auth = self._proxy_for(url)
        try:
            async with session.post(
                url, data=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s),
                proxy=proxy, proxy_auth=proxy_auth,
            ) as answer:  # fmt: skip
                return answer.status, await answer.read(), answer.headers
        except TimeoutError as exc:
            raise ProviderTimeout(f"no answer within {timeout_s:g} s") from exc
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise BadRequest(f"the tier's api_base is not a URL to call: {exc}") from exc
        except aiohttp.ClientPayloadError as exc:
            raise ConnectionFailed(f"the connection was cut inside the answer: {exc}") from exc
        except aiohttp.ClientConnectionError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise MalformedResponse(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # a header aiohttp will not send: a key with a newline, say
            raise BadRequest(f"the request cannot be sent: {exc}") from exc

    def _proxy_for(self, url: str) -> tuple[Any, Any]:
        """The environment's proxy for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``), looked up once.

        aiohttp's own ``trust_env`` looks it up again in a worker thread on every request, which
        more than doubled the CPU of a call; the environment is read at an endpoint's first call
        (a tier's URL is the same on every call, so the next ones do not even parse it).
        """
        known = self._proxies.get(url)
        if known is not None:
            return known
        import aiohttp.helpers  # noqa: PLC0415
        from yarl import URL  # noqa: PLC0415  # aiohttp's URL type

        found: tuple[Any, Any]
        try:
            found = aiohttp.helpers.get_env_proxy_for_url(URL(url))
        except LookupError:  # none set, or NO_PROXY covers the host
            found = (None, None)
        self._proxies[url] = found
        return found

    async def _session(self) -> aiohttp.ClientSession:
        """The running loop's session, made on its first call, closed when the loop shuts down."""
        import aiohttp  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        held = self._sessions.get(loop)
        if held is None or held[0].closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            )
            keeper = self._holding(loop, session)
            await anext(keeper)  # the loop now closes it at shutdown (shutdown_asyncgens)
            held = session, keeper
            self._sessions[loop] = held
        return held[0]

    async def _holding(
        self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
    ) -> AsyncGenerator[None, None]:
        """Hold ``session`` open until the loop shuts its async generators down, then forget it.

        Forgotten first: the session refers to its loop, so a session kept here would keep
        every finished loop (and its connections' buffers) alive.
        """
        try:
            yield
            await asyncio.Event().wait()  # never resumed: only closed
        finally:
            self._sessions.pop(loop, None)
            await session.close()

    async def ready(self, model: str) -> None:
        """Import aiohttp and read the price map off the event loop, once (about 0.1 s)."""
        del model
        if not self._loaded:
            await asyncio.to_thread(self._load)
            self._loaded = True

    def _load(self) -> None:
        """What the first call would otherwise pay on the event loop: aiohttp, and the prices."""
        import aiohttp  # noqa: F401, PLC0415

        self._prices.load()

    def quote(self, model: str) -> Quote | None:
        """The model's price per token and its longest answer; None when this path cannot bill it.

        A model priced by context length has no quote here: its calls are refused unpriced.
        """
        info = self._prices.entry(model)
        rate = rate_of(info) if info is not None else None
        if info is None or rate is None or rate is TIERED:
            return None
        return quote_of(info)

    def _price(self, model: str) -> Price:
        info = self._prices.entry(model)
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
        """Close the sessions of loops that are idle and open; never raises.

        A running loop closes its own at shutdown; one that another loop's thread is running
        cannot be entered from here, and is left to its own shutdown.
        """
        for loop, (session, keeper) in list(self._sessions.items()):
            if loop.is_closed() or loop.is_running() or session.closed:
                continue
            with contextlib.suppress(RuntimeError):  # another loop runs in this thread
                loop.run_until_complete(keeper.aclose())

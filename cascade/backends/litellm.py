"""The litellm backend: the only module in cascade that imports litellm, and only when first used.

``import litellm`` costs seconds and hundreds of megabytes, so importing :mod:`cascade` or
running ``cascade --help`` must not pay for it. litellm's own retries are switched off: the
engine owns retries, fallbacks and deadlines, and this module maps litellm's exceptions onto
:mod:`cascade.errors` so the engine can tell a transient fault from a permanent one.

The cost of each call comes from that call's own usage, priced by the tier's override when it
has one, and by litellm's bundled price map otherwise (``LITELLM_LOCAL_MODEL_COST_MAP=True`` is
set before the import, so the map is never fetched over the network).
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from cascade.backends.allowed import check_allowed
from cascade.backends.answer import calls_text
from cascade.backends.base import Request, Response
from cascade.backends.batch_api import BatchView
from cascade.backends.cost_map import TIERED, quote_of, rate_of
from cascade.backends.provider_errors import map_exception
from cascade.errors import (
    BadRequest,
    MalformedResponse,
    UnpricedModel,
)
from cascade.secrets import secret_values
from cascade.types import Price, Quote, Tier, Usage

__all__ = ["LiteLLMBackend", "LiteLLMBatches", "batch_prices", "load_litellm"]


def load_litellm() -> ModuleType:
    """Import litellm offline and quietly, once per process (Python caches the module)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # noqa: PLC0415  # deliberately lazy: see the module docstring

    litellm.suppress_debug_info = True
    return litellm


class LiteLLMBackend:
    """Call any model litellm knows, through ``litellm.acompletion``.

    ``defaults`` are passed on every call (``api_base``, ``api_key`` and the like); a tier's
    ``params`` override them.
    """

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._rates: dict[str, Price | None] = {}
        self._quotes: dict[str, Quote | None] = {}
        self._loaded = False

    def __repr__(self) -> str:
        return "LiteLLMBackend()"

    async def complete(self, request: Request) -> Response:
        """Complete ``request`` through litellm; raise a :class:`ProviderError` on failure."""
        litellm = load_litellm()
        if request.price is None and self._rate(litellm, request.model) is None:
            raise UnpricedModel(
                f"litellm's price map has no price for {request.model!r}; set a price on the tier"
            )
        kwargs = {**self._defaults, **request.params}
        check_allowed(request.model, kwargs)
        if _function_tools(kwargs.get("tools")):
            # With any tools, litellm's acompletion first checks for MCP gateway tools, and
            # that check imports the optional mcp package: without it, every call with tools
            # failed as a connection error. Function tools never need the gateway.
            kwargs["_skip_mcp_handler"] = True
        call = asyncio.ensure_future(
            litellm.acompletion(
                model=request.model,
                messages=[dict(m) for m in request.messages],
                timeout=request.timeout_s,
                num_retries=0,
                max_retries=0,
                **kwargs,
            )
        )
        try:
            raw = await asyncio.shield(call)
        except asyncio.CancelledError:
            await _cancel_sent(call)
            raise
        except Exception as exc:  # every litellm failure is mapped, none leaks
            raise map_exception(exc, tuple(secret_values(kwargs))) from exc
        return self._response(litellm, request, raw)

    async def ready(self, model: str) -> None:
        """Import litellm off the event loop, before a call's deadline starts.

        The import takes seconds: inside the first call it would block every task and spend
        that call's timeout before the request is even built.
        """
        del model
        if not self._loaded:
            await asyncio.to_thread(load_litellm)
            self._loaded = True

    def batch_api(self, model: str) -> LiteLLMBatches:
        """The files and batches endpoints for batch tiers: one for every ``model``."""
        del model
        return LiteLLMBatches(self)

    def quote(self, model: str) -> Quote | None:
        """The model's highest listed price per token and its longest answer; ``None`` unlisted.

        What a worst-case estimate before a call needs (a tiered price counts at its top rate).
        """
        if model not in self._quotes:
            self._quotes[model] = _lookup_quote(load_litellm(), model)
        return self._quotes[model]

    def _rate(self, litellm: ModuleType, model: str) -> Price | None:
        """The model's price from litellm's map, looked up once (``cost_per_token`` is ~150 µs).

        Models with tiered prices (by context length, say) get a zero-rate marker here and are
        priced call by call with ``cost_per_token``, so their costs stay exact.
        """
        if model not in self._rates:
            self._rates[model] = _lookup_rate(litellm, model)
        return self._rates[model]

    def _response(self, litellm: ModuleType, request: Request, raw: Any) -> Response:
        text, usage = _read(raw)
        served = str(getattr(raw, "model", None) or request.model)
        return Response(text, served, usage, self.cost(litellm, request, usage))

    def cost(self, litellm: ModuleType, request: Request, usage: Usage) -> float:
        """What ``usage`` of ``request``'s model costs: the tier's price, else litellm's."""
        rate = request.price or self._rate(litellm, request.model)
        if rate is None:
            raise UnpricedModel(
                f"litellm's price map has no price for {request.model!r}; set a price on the tier"
            )
        if rate is not TIERED:
            return rate.cost(usage)
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=request.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        return float(prompt_cost + completion_cost)


async def _cancel_sent(call: asyncio.Future[Any]) -> None:
    """Cancel a litellm call, but only once its request has left litellm's worker thread.

    ``litellm.acompletion`` builds the provider's request in a worker thread
    (``run_in_executor``), which returns the coroutine that sends it. Cancelled while that
    thread runs, the call drops the coroutine unawaited: a leak, and a ``RuntimeWarning``. The
    build takes about a millisecond (the first in a process, some tenths of a second), so the
    call is let finish it, then cancelled.
    """
    try:
        # litellm's worker thread signals nothing an event could be set by: look again shortly.
        while not call.done() and _building(call):  # noqa: ASYNC110
            await asyncio.sleep(_BUILD_POLL_S)
    finally:  # cancelled again while waiting (the loop closing, say): the call stops all the same
        call.cancel()
        call.add_done_callback(_settled)


_BUILD_POLL_S = 0.002


def _building(call: asyncio.Future[Any]) -> bool:
    """Whether ``call`` waits on litellm's worker thread: its innermost coroutine is acompletion.

    There it awaits nothing else (no fallbacks, mock delays or prompt hooks are used here).
    """
    inner = call.get_coro() if isinstance(call, asyncio.Task) else None
    while inspect.iscoroutine(inner) and inspect.iscoroutine(inner.cr_await):
        inner = inner.cr_await
    if not inspect.iscoroutine(inner):
        return False
    code = inner.cr_code
    return code.co_name == "acompletion" and Path(code.co_filename).match("litellm/main.py")


def _settled(call: asyncio.Future[Any]) -> None:
    """Read a dropped call's outcome, so its error is not reported as never retrieved."""
    if not call.cancelled():
        call.exception()


_BATCH_PROVIDERS = frozenset({"openai", "azure"})
_CONNECTION = frozenset({"api_base", "api_key", "organization", "api_version"})
"""Tier params that say where and as whom to call: sent with each batch call, not in its body."""


class LiteLLMBatches:
    """OpenAI-compatible files and batches endpoints, through litellm's batch API."""

    def __init__(self, backend: LiteLLMBackend) -> None:
        self._backend = backend

    def __repr__(self) -> str:
        return "LiteLLMBatches()"

    def line(self, custom_id: str, request: Request) -> dict[str, Any]:
        """The input file's line for ``request``: a chat completion request."""
        params = {**self._backend._defaults, **request.params}
        body = {key: value for key, value in params.items() if key not in _CONNECTION}
        model = self._provider(request.model)[0]
        messages = [dict(m) for m in request.messages]
        return {"custom_id": custom_id, "method": "POST", "url": _ENDPOINT,
                "body": {"model": model, "messages": messages, **body}}  # fmt: skip

    def response(self, tier: Tier, request: Request, body: Mapping[str, Any]) -> Response:
        """A completion of the output file, priced at the batch price.

        That is litellm's batch price for the model where its cost map has one; otherwise the
        tier's ``batch_discount`` of the call price (the tier's own price, or litellm's).
        """
        litellm = load_litellm()
        text, usage = _read(litellm.ModelResponse(**body))
        prices = batch_prices(request.model) if request.price is None else None
        if prices is not None:
            cost = prices[1].cost(usage)
        else:
            discount = tier.batch.discount if tier.batch is not None else 1.0
            cost = self._backend.cost(litellm, request, usage) * discount
        return Response(text, str(body.get("model") or request.model), usage, cost)

    async def upload(self, tier: Tier, content: bytes) -> str:
        """Upload an input file; its id."""
        file = ("batch.jsonl", content)
        made = await self._call("acreate_file", tier, file=file, purpose="batch")
        return str(made.id)

    async def create(self, tier: Tier, file_id: str) -> BatchView:
        """Make a batch of an uploaded file."""
        return _view(await self._call("acreate_batch", tier, input_file_id=file_id,
                                      endpoint=_ENDPOINT, completion_window="24h"))  # fmt: skip

    async def find(self, tier: Tier, file_id: str) -> BatchView | None:
        """The batch made of ``file_id`` among the provider's latest 100, if there is one."""
        found = await self._call("alist_batches", tier, limit=100)
        views = [_view(raw) for raw in found.data]
        return next((view for view in views if view.input_file_id == file_id), None)

    async def retrieve(self, tier: Tier, batch_id: str) -> BatchView:
        """The batch's state now."""
        return _view(await self._call("aretrieve_batch", tier, batch_id=batch_id))

    async def cancel(self, tier: Tier, batch_id: str) -> BatchView:
        """Ask the provider to stop the batch."""
        return _view(await self._call("acancel_batch", tier, batch_id=batch_id))

    async def content(self, tier: Tier, file_id: str) -> bytes:
        """An output or error file."""
        got = await self._call("afile_content", tier, file_id=file_id)
        return bytes(got.content)

    async def _call(self, name: str, tier: Tier, **kwargs: Any) -> Any:
        litellm = load_litellm()
        provider = self._provider(tier.model)[1]
        params = {**self._backend._defaults, **tier.params}
        where = {key: value for key, value in params.items() if key in _CONNECTION}
        try:
            return await getattr(litellm, name)(custom_llm_provider=provider, **where, **kwargs)
        except Exception as exc:  # every litellm failure is mapped, none leaks
            raise map_exception(exc) from exc

    def _provider(self, model: str) -> tuple[str, str]:
        """The provider's own name of ``model``, and the provider, which must take batches."""
        try:
            name, provider, _, _ = load_litellm().get_llm_provider(model)
        except Exception as exc:  # litellm raises several types for "not mapped"
            raise map_exception(exc) from exc
        if provider not in _BATCH_PROVIDERS:
            raise BadRequest(f"{model}: batch tiers use OpenAI-compatible batch endpoints "
                             f"(openai, azure), and {provider} is not one")  # fmt: skip
        return str(name), str(provider)


_ENDPOINT = "/v1/chat/completions"


def _view(raw: Any) -> BatchView:
    return BatchView(str(raw.id), str(raw.status), str(raw.input_file_id),
                     raw.output_file_id, raw.error_file_id)  # fmt: skip


def _function_tools(tools: Any) -> bool:
    """Whether ``tools`` is a list of tools none of which is an MCP server's."""
    if not isinstance(tools, list | tuple) or not tools:
        return False
    return not any(isinstance(t, Mapping) and t.get("type") == "mcp" for t in tools)


def _read(raw: Any) -> tuple[str, Usage]:
    """A completion's text and usage; its tool calls, as JSON calls, when it made some."""
    try:
        message = raw.choices[0].message
        text = message.content
        calls = getattr(message, "tool_calls", None)
        usage = Usage(int(raw.usage.prompt_tokens or 0), int(raw.usage.completion_tokens or 0))
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise MalformedResponse(f"completion has no usable choice or usage: {exc}") from exc
    if usage.prompt_tokens < 0 or usage.completion_tokens < 0:
        raise MalformedResponse(f"completion counts negative tokens: {usage}")
    if calls:
        return _calls_text(calls), usage
    if not isinstance(text, str):
        raise MalformedResponse(f"completion content is {type(text).__name__}, not text")
    return text, usage


def _calls_text(calls: Any) -> str:
    """Tool calls as the function-call validator reads them (see :func:`calls_text`)."""
    try:
        return calls_text([(call.function.name, call.function.arguments) for call in calls])
    except (AttributeError, TypeError) as exc:
        raise MalformedResponse(f"a tool call has no function name or arguments: {exc}") from exc


def _lookup_rate(litellm: ModuleType, model: str) -> Price | None:
    try:
        info = litellm.get_model_info(model)
    except Exception:  # noqa: BLE001  # litellm raises several types for "not mapped"
        return None
    return rate_of(info)


def _lookup_quote(litellm: ModuleType, model: str) -> Quote | None:
    try:
        info = litellm.get_model_info(model)
    except Exception:  # noqa: BLE001  # litellm raises several types for "not mapped"
        return None
    return quote_of(info)


def batch_prices(model: str) -> tuple[Price, Price] | None:
    """``model``'s price per call and per batch-API call, where litellm's cost map has both."""
    litellm = load_litellm()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # noqa: BLE001  # litellm raises several types for "not mapped"
        return None
    keys = ("input_cost_per_token", "output_cost_per_token")
    rates = [info.get(k) for k in keys] + [info.get(f"{k}_batches") for k in keys]
    if not all(isinstance(v, int | float) for v in rates):
        return None
    values = [float(v) * 1e6 for v in rates]
    return Price(values[0], values[1]), Price(values[2], values[3])

"""Make one attempt's backend calls: a deadline on each, retries, then the tier's fallbacks.

This wraps around the decision loop and does not sit inside it: the engine asks for an answer
from a tier and gets back every call it took, the last of which either answered or failed.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from cascade.backends.base import Backend, Request, Response
from cascade.errors import MalformedResponse, ProviderError, ProviderTimeout, RateLimited
from cascade.retry import RetryPolicy
from cascade.types import CallKind, Message, Tier

__all__ = ["Call", "Caller"]


@dataclass(frozen=True, slots=True)
class Call:
    """One backend call: its answer, or the provider error it ended in."""

    model: str
    kind: CallKind
    latency_s: float
    response: Response | None = None
    error: ProviderError | None = None


class Caller:
    """Call a tier's models in order, retrying transient errors on each before moving on."""

    def __init__(self, backend: Backend, retry: RetryPolicy) -> None:
        self._backend = backend
        self._retry = retry

    async def call_tier(
        self, tier: Tier, messages: tuple[Message, ...], task_id: str, kind: CallKind
    ) -> list[Call]:
        """Every call made for one attempt; it stops at the first that answers."""
        calls: list[Call] = []
        # A validator's calls keep their kind through retries and fallbacks: they never answer
        # the task, and reports must be able to tell them apart.
        own = kind is CallKind.VALIDATOR
        for position, model in enumerate(tier.models):
            call_kind = kind if position == 0 or own else CallKind.FALLBACK
            for retry_number in range(tier.retries + 1):
                call = await self._once(tier, model, messages, task_id, call_kind)
                calls.append(call)
                if call.error is None:
                    return calls
                if not call.error.transient or retry_number == tier.retries:
                    break
                retry_after = (
                    call.error.retry_after_s if isinstance(call.error, RateLimited) else None
                )
                wait = self._retry.wait_s(retry_number, retry_after)
                if wait is None:
                    break
                await self._retry.sleep(wait)
                call_kind = kind if own else CallKind.RETRY
        return calls

    async def _once(
        self, tier: Tier, model: str, messages: tuple[Message, ...], task_id: str, kind: CallKind
    ) -> Call:
        request = Request(model, messages, task_id, tier.params, tier.timeout_s, tier.price)
        start = time.perf_counter()
        error: ProviderError
        try:
            # Our own deadline: litellm's timeouts are not reliable.
            async with asyncio.timeout(tier.timeout_s):
                response = await self._backend.complete(request)
        except TimeoutError:
            error = ProviderTimeout(f"{model} did not answer within {tier.timeout_s:g}s")
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001  # a broken backend is a fault of the call
            error = MalformedResponse(f"backend raised {type(exc).__name__}: {exc}")
        else:
            latency = time.perf_counter() - start
            problem = _malformed(response)
            if problem is None:
                if response.latency_s is not None:
                    latency = response.latency_s
                return Call(model, kind, latency, response=response)
            error = MalformedResponse(problem)
        return Call(model, kind, time.perf_counter() - start, error=error)


def _malformed(response: object) -> str | None:
    if not isinstance(response, Response):
        return f"backend returned {type(response).__name__}, not a Response"
    # Typed as object: a third-party backend may fill a Response with anything.
    text: object = response.text
    cost: object = response.cost_usd
    if not isinstance(text, str):
        return f"backend returned text of type {type(text).__name__}"
    if not isinstance(cost, int | float) or not math.isfinite(cost) or cost < 0:
        return f"backend returned cost {cost!r}"
    return None

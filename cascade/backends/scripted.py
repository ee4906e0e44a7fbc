"""A scripted backend: the test double. Outputs, errors and latencies are scripted per model.

>>> import asyncio
>>> from cascade.errors import ServerError
>>> backend = ScriptedBackend({"small": ["hello", ServerError("503")]})
>>> asyncio.run(backend.complete(Request("small", ({"role": "user", "content": "hi"},)))).text
'hello'
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from cascade.backends.base import Request, Response
from cascade.errors import BackendFault, ConfigError, UnknownModel
from cascade.types import Price, Usage

__all__ = ["Hang", "Raw", "Reply", "Script", "ScriptedBackend"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted completion with optional usage, latency, served model and confidence."""

    text: str
    usage: Usage | None = None
    latency_s: float = 0.0
    model_served: str | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    """A call that never returns, to test deadlines."""


@dataclass(frozen=True, slots=True)
class Raw:
    """Whatever ``value`` is, returned by ``complete`` as it is: to test a backend's garbage."""

    value: object


Item = str | Reply | Hang | BaseException | Response | Raw
"""What one scripted call yields: a text or a :class:`Reply`, an error raised, a hang, a
ready-made :class:`Response`, or :class:`Raw` garbage."""

Script = Sequence[Item] | Callable[[Request], Item]


class ScriptedBackend:
    """Serve scripted items per model, in order; the last item repeats once the list runs out.

    A script may also be a function of the request, for answers that depend on the task.
    With ``virtual_time``, a reply's ``latency_s`` is reported as the call's latency instead of
    slept, as a replay reports recorded ones: deadlines and hedges are tested without waiting.
    Every request is kept in ``calls``. Cost comes from the request's price, then ``prices``,
    else zero. Usage, when not scripted, counts whitespace-separated words.
    """

    def __init__(
        self,
        script: Mapping[str, Script],
        *,
        prices: Mapping[str, Price] | None = None,
        virtual_time: bool = False,
    ) -> None:
        for model, items in script.items():
            if isinstance(items, str | bytes):
                raise ConfigError(
                    f"the script of {model!r} is a string, which would be served one character "
                    f"per call: give a list ([{items!r}]) or a function of the request"
                )
            if not callable(items):
                odd = [item for item in items if not isinstance(item, _ITEMS)]
                if odd:
                    raise ConfigError(f"the script of {model!r}: {_not_an_item(odd[0])}")
        self._script = dict(script)
        self._virtual = virtual_time
        self._prices = dict(prices or {})
        self._cursor: dict[str, int] = {}
        self.calls: list[Request] = []

    def __repr__(self) -> str:
        return f"ScriptedBackend(models={sorted(self._script)!r})"

    async def complete(self, request: Request) -> Response:
        """Serve the next scripted item for ``request.model``."""
        self.calls.append(request)
        item = self._next(request)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Hang):
            await asyncio.Event().wait()
        if isinstance(item, str):
            item = Reply(item)
        if isinstance(item, Raw):
            return cast(Response, item.value)  # garbage on purpose, to test the engine's checks
        if isinstance(item, Response):
            return item
        if not isinstance(item, Reply):  # from a script function: its answer is the fault
            raise BackendFault(_not_an_item(item))
        if item.latency_s and not self._virtual:
            await asyncio.sleep(item.latency_s)
        usage = item.usage or Usage(
            prompt_tokens=sum(len(m["content"].split()) for m in request.messages),
            completion_tokens=len(item.text.split()),
        )
        price = request.price or self._prices.get(request.model)
        return Response(
            text=item.text,
            model=item.model_served or request.model,
            usage=usage,
            cost_usd=price.cost(usage) if price else 0.0,
            confidence=item.confidence,
            latency_s=item.latency_s if self._virtual else None,
        )

    def _next(self, request: Request) -> Item:
        script = self._script.get(request.model)
        if script is None:
            raise UnknownModel(f"scripted backend has no model {request.model!r}")
        if callable(script):
            return script(request)
        if not script:
            raise UnknownModel(f"scripted backend has an empty script for {request.model!r}")
        index = self._cursor.get(request.model, 0)
        self._cursor[request.model] = index + 1
        return script[min(index, len(script) - 1)]


_ITEMS = (str, Reply, Hang, BaseException, Response, Raw)


def _not_an_item(item: object) -> str:
    return (f"a script item is a str, Reply, Hang, exception, Response or Raw, "
            f"not {type(item).__name__}")  # fmt: skip

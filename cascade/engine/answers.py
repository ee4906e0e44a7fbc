"""The answers one task already has, which its validators reuse instead of paying again.

Validators that call models (a judge, agreement, a vote) do so through the task's *asker*:
a model's answer to the same question (same messages, same sample) that the task already has,
its own tier's answer or another check's, is served again at no cost. The calls that were made
are kept until the loop records them as the answer's validator steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cascade.engine.call import Call
from cascade.engine.calls import Caller
from cascade.enums import CallKind
from cascade.types import Ask, Message, Price, Response, Tier, Verdict

__all__ = ["Answers", "reask_turns"]


class Answers:
    """A task's answers by (model, sample, question), and its validators' calls not yet kept."""

    def __init__(self, caller: Caller, task_id: str) -> None:
        self._caller = caller
        self._task_id = task_id
        self._known: dict[tuple[str, int, int], Response] = {}
        self._calls: list[Call] = []
        self._asked: tuple[Message, ...] = ()
        self._asked_key = _question(())

    def take_calls(self) -> list[Call]:
        """The validators' calls since the last take."""
        calls, self._calls = self._calls, []
        return calls

    def asker(self, tier: Tier, kind: CallKind = CallKind.VALIDATOR) -> Ask:
        """Let validators call models through the caller; their calls are kept for the record.

        ``tier`` lends its retries and timeout; ``kind`` is the calls' (an audit's, say).
        """

        async def ask(
            model: str,
            messages: tuple[Message, ...],
            *,
            params: Mapping[str, Any] | None = None,
            price: Price | None = None,
            sample: int = 0,
        ) -> Response:
            known = self._known.get((model, sample, _question(messages)))
            if known is not None:  # already paid for on this task: reused at no cost
                return dataclasses.replace(known, cost_usd=0.0, latency_s=0.0, compute_s=0.0)
            rung = Tier(model, retries=tier.retries, timeout_s=tier.timeout_s, price=price)
            if params:
                rung = dataclasses.replace(rung, params=params)
            calls = await self._caller.call_tier(rung, messages, self._task_id, kind, sample=sample)
            self._calls.extend(calls)
            if calls[-1].error is not None:
                raise calls[-1].error
            response = calls[-1].response
            assert response is not None  # a call without an error answered
            self.keep(model, sample, messages, response)
            return response

        return ask

    def keep(
        self, model: str, sample: int, messages: tuple[Message, ...], response: Response
    ) -> None:
        """Remember a model's answer to a question, so that checks can reuse it for free."""
        if messages is not self._asked:
            self._asked, self._asked_key = messages, _question(messages)
        self._known.setdefault((model, sample, self._asked_key), response)


def _question(messages: tuple[Message, ...]) -> int:
    """A key for what was asked: the messages' roles and contents."""
    return hash(tuple((m.get("role"), m.get("content")) for m in messages))


def reask_turns(response: Response | None, verdict: Verdict) -> tuple[Message, Message]:
    """The turns a re-ask adds: the rejected answer, then the validators' feedback on it."""
    problem = verdict.feedback or verdict.reason or "it did not pass validation"
    return (
        {"role": "assistant", "content": response.text if response is not None else ""},
        {"role": "user", "content": f"Your answer was rejected: {problem}\nPlease answer again."},
    )

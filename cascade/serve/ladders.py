"""The cascade a served request runs: its policy's, with what the request itself asks for.

A request's ``response_format`` and ``tools`` go to every tier as the client sent them (a
tier's own ``response_format`` or ``tools`` win), and add the validators that check them: the
JSON Schema (:func:`~cascade.validators.json_schema` of the task's ``schema``) and, as
``tool_choice`` says (see :mod:`cascade.serve.tools`), the function call
(:func:`~cascade.validators.function_call` of its ``functions``), beside the policy's own.
``max_tokens`` goes to tiers that set none. One cascade is built per distinct shape and kept
(the most recent few hundred), so a client that sends the same parameters every time builds
one. A drift alarm with ``on_drift = "escalate"`` starts its task type one tier higher, as in
``cascade run``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cascade.engine import Cascade, Plan, Settings
from cascade.policy import Policy, PolicySet
from cascade.serve.chat import ChatRequest
from cascade.serve.tools import CallIfAny, choice_of
from cascade.types import Tier
from cascade.validators.base import Validator
from cascade.validators.calls import function_call
from cascade.validators.combine import all_of
from cascade.validators.schema import json_schema

__all__ = ["Ladders"]

_KEPT = 32
"""Cascades kept built, one per distinct request shape (each holds its schema and tools)."""


class Ladders:
    """The cascades of a server's policies, per request shape."""

    def __init__(
        self,
        policies: PolicySet,
        settings: Settings,
        escalated: Callable[[], set[str]] | None = None,
    ) -> None:
        self.policies = {policy.task_type: policy for policy in policies}
        self.settings = settings
        self._escalated = escalated
        self._built: OrderedDict[tuple[str, bool], Cascade] = OrderedDict()
        self._schema = json_schema(None)
        self._calls = function_call()
        self._call_if_any = CallIfAny()

    def escalates(self, task_type: str) -> bool:
        """Whether a drift alarm now starts ``task_type`` one tier higher."""
        policy = self.policies[task_type]
        if self._escalated is None or policy.drift is None or policy.drift.on_drift != "escalate":
            return False
        return task_type in self._escalated()

    def for_request(self, request: ChatRequest) -> Cascade:
        """The cascade that serves ``request``."""
        higher = self.escalates(request.task_type)
        key = (hashlib.sha256(request.shape().encode()).hexdigest(), higher)
        built = self._built.get(key)
        if built is not None:
            self._built.move_to_end(key)
            return built
        plan = self._plan(self.policies[request.task_type], request)
        built = Cascade(plan.one_tier_higher() if higher else plan, settings=self.settings)
        self._built[key] = built
        if len(self._built) > _KEPT:
            self._built.popitem(last=False)
        return built

    def _plan(self, policy: Policy, request: ChatRequest) -> Plan:
        plan = policy.plan
        sent: dict[str, Any] = {}
        if request.response_format is not None:
            sent["response_format"] = request.response_format
        if request.tools is not None:
            sent["tools"] = list(request.tools)
            if request.tool_choice is not None:
                sent["tool_choice"] = request.tool_choice
        if request.max_tokens is not None:
            sent["max_tokens"] = request.max_tokens
        validators: list[Validator] = [plan.validator]
        if request.schema is not None:
            validators.append(self._schema)
        if request.tools is not None:
            mode, _ = choice_of(request.tool_choice)
            if mode == "required":
                validators.append(self._calls)
            elif mode == "auto":
                validators.append(self._call_if_any)
        validate = validators[0] if len(validators) == 1 else all_of(*validators)
        if not sent:
            return plan if len(validators) == 1 else dataclasses.replace(plan, validate=validate)
        ladder = tuple(_with(tier, sent) for tier in plan.tiers)
        return dataclasses.replace(plan, ladder=ladder, validate=validate)


def _with(tier: Tier, sent: dict[str, Any]) -> Tier:
    """``tier`` sending the request's parameters too (its own win)."""
    return dataclasses.replace(tier, params={**sent, **tier.params})

"""The values a task is asked and judged with: all frozen dataclasses.

A :class:`Task` runs up a ladder of :class:`Tier` s. Each call is a :class:`Request` that a
backend answers with a :class:`Response`; an answer becomes an :class:`Attempt` that validators
judge with a :class:`Verdict`. What the engine keeps of it all is in :mod:`cascade.outcome`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

from cascade.errors import ConfigError, TaskError
from cascade.money import Price, Quote, Usage

__all__ = [
    "HUMAN",
    "Ask",
    "Attempt",
    "Batching",
    "Message",
    "Price",
    "Quote",
    "Request",
    "Response",
    "Task",
    "Tier",
    "Usage",
    "Verdict",
]

Message = Mapping[str, str]
"""A chat message: ``{"role": "user", "content": "..."}``."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


HUMAN = "human"
"""The model name of a review-queue tier: tasks that reach it wait for a person's answer."""


@dataclass(frozen=True, slots=True)
class Batching:
    """How a batch tier sends its calls: through the provider's batch API, at its batch price.

    Calls wait until ``size`` of them have gathered, or ``wait_s`` after the first, and go as one
    batch. A call whose batch has not answered ``deadline_s`` after it was gathered is cancelled
    and made as an ordinary call. ``discount`` is the share of the price a batch call pays where
    the provider's batch price is not known (a tier's own ``price``, or a model litellm's cost
    map lists without one).
    """

    size: int = 500
    wait_s: float = 5.0
    deadline_s: float = 86_400.0
    discount: float = 0.5

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.size!r}")
        for name in ("wait_s", "deadline_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"batch_{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.discount <= 1:
            raise ConfigError(f"batch_discount must be in (0, 1], got {self.discount!r}")


@dataclass(frozen=True, slots=True)
class Tier:
    """One rung of the ladder.

    ``reasks`` is how many times the tier is asked again with the validators' feedback before
    escalating. ``retries`` is how many times a provider error is retried on each model before
    moving to the next of ``fallbacks``. ``timeout_s`` is our own deadline for one call.
    ``price`` overrides the backend's price, for models the price map does not know.
    ``few_shot`` says whether the cascade's worked examples are sent to this tier; a ``trusted``
    tier's answers are accepted without running the validators (a strong last tier, say). A
    tier whose model is ``"human"`` makes no call: a task that reaches it waits for review.

    >>> Tier("openai/gpt-4o-mini", reasks=1, fallbacks=("azure/gpt-4o-mini",)).models
    ('openai/gpt-4o-mini', 'azure/gpt-4o-mini')
    """

    model: str
    reasks: int = 0
    fallbacks: tuple[str, ...] = ()
    timeout_s: float = 60.0
    retries: int = 2
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    price: Price | None = None
    few_shot: bool = True
    trusted: bool = False
    expected_latency_s: float | None = None
    """Seconds an answer of this tier is expected to take (its p90), used by tasks with a
    deadline until the run has seen enough of the model's calls to measure it."""
    hedge: bool = False
    """With a task deadline: start the next tier early, while this one has not answered, when
    waiting longer would leave the next tier too little time. The first accepted answer wins."""
    batch: Batching | None = None
    """Send this tier's calls through the provider's batch API (see :class:`Batching`), re-asks
    in a later batch; a call the batch could not answer is made as an ordinary one."""
    backend: Literal["litellm", "http"] | None = None
    """Which of cascade's own backends calls this tier's models: ``"http"``, the lean path to a
    Chat Completions API (:mod:`cascade.backends.http`); ``"litellm"`` or ``None``, litellm (a
    ``local/`` model: llama.cpp). A backend given to the cascade itself serves every tier."""
    validate: Callable[[Attempt], Verdict | Awaitable[Verdict]] | None = field(
        default=None, compare=False
    )
    """This tier's own validator, used instead of the cascade's (a policy makes it the policy's
    checks plus the tier's ``[[tiers.validators]]``): a confidence threshold suits one model's
    scale, not another's."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"a tier needs a model name, got {self.model!r}")
        if self.reasks < 0 or self.retries < 0:
            raise ConfigError(f"tier {self.model}: reasks and retries must be >= 0")
        if not self.timeout_s > 0:
            raise ConfigError(f"tier {self.model}: timeout_s must be > 0, got {self.timeout_s!r}")
        if self.trusted and self.validate is not None:
            raise ConfigError(f"tier {self.model}: a trusted tier runs no validators")
        if self.model == HUMAN and (self.fallbacks or self.reasks or self.hedge or self.batch
                                    or self.backend):  # fmt: skip
            raise ConfigError("the human tier takes no fallbacks, re-asks, hedge, batch or backend")
        if self.backend not in (None, "litellm", "http"):
            raise ConfigError(f"tier {self.model}: backend is 'litellm' or 'http', "
                              f"not {self.backend!r}")  # fmt: skip
        if self.backend == "http" and self.batch is not None:
            raise ConfigError(f"tier {self.model}: a batch tier uses litellm's batch API, "
                              "not backend = 'http'")  # fmt: skip
        if self.hedge and self.batch is not None:
            raise ConfigError(f"tier {self.model}: a batch tier cannot hedge (a batch is slow)")
        if self.expected_latency_s is not None and not self.expected_latency_s > 0:
            raise ConfigError(f"tier {self.model}: expected_latency_s must be > 0, "
                              f"got {self.expected_latency_s!r}")  # fmt: skip
        object.__setattr__(self, "fallbacks", tuple(self.fallbacks))
        object.__setattr__(self, "params", _frozen_mapping(self.params))

    @property
    def is_human(self) -> bool:
        """Whether this tier is the human review queue rather than a model."""
        return self.model == HUMAN

    @property
    def models(self) -> tuple[str, ...]:
        """The primary model followed by its fallbacks, in the order they are tried."""
        return (self.model, *self.fallbacks)


_TASK_KEYS = frozenset({"id", "type", "input", "messages", "meta", "deadline_s"})


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work. It carries either ``input`` text or chat ``messages``.

    ``extra`` holds the other fields that travel with the task for validators, such as
    ``tests`` for code or ``functions`` for function calls. ``deadline_s`` is the task's own
    time budget in seconds (it overrides a policy's): no re-ask or tier is started that could
    not answer within it.
    """

    id: str
    input: str | None = None
    messages: tuple[Message, ...] | None = None
    type: str = "default"
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise TaskError(f"task field 'id' must be a non-empty string, got {self.id!r}")
        where = f"task {self.id!r}"
        if not isinstance(self.type, str) or not self.type:
            raise TaskError(f"{where}: field 'type' must be a non-empty string")
        if (self.input is None) == (self.messages is None):
            raise TaskError(f"{where}: needs exactly one of 'input' or 'messages'")
        if self.input is not None and not isinstance(self.input, str):
            raise TaskError(f"{where}: field 'input' must be a string")
        if self.messages is not None:
            object.__setattr__(self, "messages", _check_messages(where, self.messages))
        if self.deadline_s is not None:
            deadline: object = self.deadline_s
            if (
                isinstance(deadline, bool)
                or not isinstance(deadline, int | float)
                or not math.isfinite(deadline)
                or deadline <= 0
            ):
                raise TaskError(f"{where}: field 'deadline_s' must be a number of seconds > 0, "
                                f"got {deadline!r}")  # fmt: skip
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))
        object.__setattr__(self, "extra", _frozen_mapping(self.extra))

    @classmethod
    def from_dict(cls, data: Any) -> Task:
        """Build a task from a decoded JSON object, naming the field that is wrong.

        >>> Task.from_dict({"id": "t1", "input": "hello", "tests": ["assert True"]}).extra
        mappingproxy({'tests': ['assert True']})
        """
        if not isinstance(data, Mapping):
            raise TaskError(f"a task must be a JSON object, got {type(data).__name__}")
        meta = data.get("meta", {})
        if not isinstance(meta, Mapping):
            raise TaskError(f"task {data.get('id')!r}: field 'meta' must be an object")
        messages = data.get("messages")
        return cls(
            id=data.get("id"),  # type: ignore[arg-type]  # checked in __post_init__
            input=data.get("input"),
            messages=None if messages is None else _as_tuple(data.get("id"), messages),
            type=data.get("type", "default"),
            meta=meta,
            extra={k: v for k, v in data.items() if k not in _TASK_KEYS},
            deadline_s=data.get("deadline_s"),
        )


def _as_tuple(task_id: object, messages: object) -> tuple[Message, ...]:
    if not isinstance(messages, list | tuple):
        raise TaskError(f"task {task_id!r}: field 'messages' must be a list")
    return tuple(messages)


def _check_messages(where: str, messages: tuple[Message, ...]) -> tuple[Message, ...]:
    if not messages:
        raise TaskError(f"{where}: field 'messages' is empty")
    for index, message in enumerate(messages):
        if not (
            isinstance(message, Mapping)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise TaskError(
                f"{where}: messages[{index}] must be an object with string 'role' and 'content'"
            )
    return tuple(MappingProxyType(dict(m)) for m in messages)


@dataclass(frozen=True, slots=True)
class Request:
    """One call to a model: what to ask, of which model, within what deadline."""

    model: str
    messages: tuple[Message, ...]
    task_id: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    timeout_s: float = 60.0
    price: Price | None = None
    reask: int = 0
    """How many times the task was already put to this tier: 0 for a first ask, ``k`` for the
    ``k``-th re-ask (whose conversation ends with the earlier answers and their feedback)."""
    sample: int = 0
    """0 for an ordinary ask; ``j`` for the ``j``-th extra sample of the same question, which a
    self-consistency check asks for (a replay serves the recorded samples from the last)."""
    confidence: bool = False
    """Whether the caller reads the model's confidence in its answer. A backend that pays extra
    to get one (a second, self-assessment call, say) does so only then; a replay charges the
    recorded cost with the self-assessment only then, and the answer-only cost otherwise."""


@dataclass(frozen=True, slots=True)
class Response:
    """A completion and its accounting.

    ``latency_s`` is set by backends that know a call's real latency better than a wall clock
    around ``complete`` does (a replay of a recorded call, say); otherwise the engine measures it.
    """

    text: str
    model: str
    usage: Usage
    cost_usd: float
    latency_s: float | None = None
    confidence: float | None = None
    compute_s: float = 0.0
    """Seconds of this machine's compute the call took: set by local backends."""


class Ask(Protocol):
    """How a validator calls a model through the engine: priced, logged, stored and replayable.

    The call is retried like the tier's own calls, its cost is counted on the task, and it is
    recorded as a step of kind ``validator``. A provider error that outlasts the retries is
    raised, which makes the validator's verdict a fault.
    """

    async def __call__(
        self,
        model: str,
        messages: tuple[Message, ...],
        *,
        params: Mapping[str, Any] | None = None,
        price: Price | None = None,
        sample: int = 0,
    ) -> Response:
        """Ask ``model`` and return its response (``sample`` > 0: another sample of it).

        An answer the task already has from ``model`` to the same question (an earlier tier's
        first answer, or another check's call) is returned again at no cost.
        """
        ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """One answered call, as validators see it: the single state record they receive.

    ``ask`` lets a validator call a model through the engine (see :class:`Ask`); it is ``None``
    when an attempt is judged outside a cascade. ``messages`` is what the model was asked (the
    task's first messages, without worked examples or re-ask turns), so that a validator can ask
    another model the same question.
    """

    task: Task
    tier_index: int
    tier: Tier
    model: str
    model_served: str
    output: str
    usage: Usage
    cost_usd: float
    latency_s: float
    number: int = 0
    history: tuple[Attempt, ...] = ()
    confidence: float | None = None
    ask: Ask | None = field(default=None, compare=False, repr=False)
    messages: tuple[Message, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A validator's decision: a value, never an exception.

    ``reason`` is for people; ``feedback`` is what the model is told on a re-ask. ``value`` is
    what the validator parsed out of the output (a JSON object, say), which travels on to the
    result. ``fault`` marks a validator that crashed rather than judged. ``answer`` and
    ``answer_model`` name the answer to deliver when it is not the attempt's own output: a vote
    passes with its majority's answer. ``self_reported`` marks a test verdict the tested code
    could have influenced.
    """

    passed: bool
    reason: str = ""
    feedback: str = ""
    score: float | None = None
    validator: str = ""
    value: Any = None
    fault: bool = False
    children: tuple[Verdict, ...] = ()
    answer: str | None = None
    answer_model: str | None = None
    self_reported: bool = False
    """The code under test ran in the same process as the check that judged it, and could
    have forged the result (see :func:`cascade.validators.passes_tests`)."""
    seconds: float | None = field(default=None, compare=False)
    """How long the validator took, when it took a millisecond or more (the sandbox, mypy):
    set by :func:`cascade.validators.run_validator`, exported as a span, never stored."""

    def leaves(self) -> tuple[Verdict, ...]:
        """The verdicts of the individual validators under any combinators."""
        if not self.children:
            return (self,)
        return tuple(leaf for child in self.children for leaf in child.leaves())

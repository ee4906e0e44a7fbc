"""``agreement(model)``: a second model answers the same task, and the two answers must match.

Two cheap models that agree are right far more often than either alone: on function calls,
where schema checks catch little because cheap models emit well-formed calls with wrong values,
agreement is the check that generalises. The second model is asked the task's own messages
through the engine (:class:`cascade.types.Ask`), so its call is priced on the task, retried,
logged and stored as a step of kind ``validator``, and replayed from a dataset like any other.

Answers are compared after normalisation, by ``compare``:

- ``"call"``: the same function calls with the same arguments, in any order; numbers compare by
  value (``5`` and ``5.0``), text without case or surrounding space.
- ``"json"``: the same JSON value, with the same normalisation.
- ``"text"``: the same text, ignoring case, runs of whitespace and trailing punctuation.
- ``"number"``: the same final number, by value: the one after ``####`` when the answer has
  that mark (math prompts ask for it), else the last number written (``$1,200`` is ``1200``).
- ``"auto"`` (the default): calls for tasks that offer ``functions``, JSON when both answers hold
  one, text otherwise.

A second model that cannot answer (a provider error after retries) fails the check, which
escalates the task, rather than crashing it.

>>> agreement("claude-3-haiku-20240307")
agreement('claude-3-haiku-20240307')
>>> same_answers('[f(a=1, b="X ")]', "[f(b='x', a=1.0)]", "call")
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from cascade.errors import ConfigError, ProviderError
from cascade.types import Attempt, Price, Task, Verdict
from cascade.validators.base import CostClass
from cascade.validators.calls import parse_calls
from cascade.validators.jsonvalue import extract_json

__all__ = [
    "MODES",
    "Compare",
    "agreement",
    "compare_mode",
    "final_number",
    "normal_answer",
    "resolve_mode",
    "same_answers",
]

Compare = Literal["auto", "call", "json", "text", "number"]
_SPACE = re.compile(r"\s+")
MODES = ("auto", "call", "json", "text", "number")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _SPACE.sub(" ", value).strip().casefold()
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canonical(v) for v in value)
    return repr(value)


def normal_answer(text: str, compare: Compare) -> Any:
    """The answer in comparable form, or ``None`` when it cannot be read that way.

    ``compare`` must not be ``"auto"`` (see :func:`resolve_mode`).
    """
    if compare == "call":
        calls, _ = parse_calls(text)
        if calls is None:
            return None
        return tuple(sorted(repr((c["name"], _canonical(c["arguments"]))) for c in calls))
    if compare == "number":
        return final_number(text)
    if compare == "json":
        value, problem = extract_json(text)
        return None if problem is not None else _canonical(value)
    return _SPACE.sub(" ", text).strip().rstrip(".!").casefold() or None


def final_number(text: str) -> float | None:
    r"""The answer's final number: the first after the last ``####``, else the last one written.

    >>> final_number("3 + 4 = 7 apples.\n#### $1,207.50 total"), final_number("no digits")
    (1207.5, None)
    """
    mark = text.rfind("####")
    found = _NUMBER.search(text, mark) if mark >= 0 else None
    if found is None:
        numbers = _NUMBER.findall(text if mark < 0 else text[:mark])
        if not numbers:
            return None
        value = numbers[-1]
    else:
        value = found.group()
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return None


def same_answers(first: str, second: str, compare: Compare) -> bool:
    """Whether two outputs give the same answer after normalisation (``compare`` not auto)."""
    one = normal_answer(first, compare)
    return one is not None and one == normal_answer(second, compare)


def compare_mode(compare: Compare, task: Task, first: str, second: str) -> Compare:
    """How two answers to ``task`` compare: ``compare``, or for ``"auto"`` by the task and them.

    Calls for tasks that offer ``functions``, JSON when both answers hold one, text otherwise.
    """
    if compare != "auto":
        return compare
    if task.extra.get("functions"):
        return "call"
    both = extract_json(first)[1] is None and extract_json(second)[1] is None
    return "json" if both else "text"


def resolve_mode(compare: Compare, attempt: Attempt) -> Compare:
    """How answers to ``attempt``'s task compare: ``compare``, or for ``"auto"`` by the task.

    Calls for tasks that offer ``functions``, JSON when the answer holds one, text otherwise.
    """
    if compare != "auto":
        return compare
    if attempt.task.extra.get("functions"):
        return "call"
    return "json" if extract_json(attempt.output)[1] is None else "text"


class _Agreement:
    cost_class = CostClass.MODEL

    def __init__(
        self, model: str, compare: Compare, params: Mapping[str, Any], price: Price | None
    ) -> None:
        self._model = model
        self._compare = compare
        self._params = dict(params)
        self._price = price

    def __repr__(self) -> str:
        extra = "" if self._compare == "auto" else f", compare={self._compare!r}"
        return f"agreement({self._model!r}{extra})"

    def _mode(self, attempt: Attempt, other: str) -> Compare:
        return compare_mode(self._compare, attempt.task, attempt.output, other)

    async def __call__(self, attempt: Attempt) -> Verdict:
        if attempt.ask is None or not attempt.messages:
            return Verdict(False, reason="agreement needs a cascade to ask a second model through")
        try:
            response = await attempt.ask(
                self._model, attempt.messages, params=self._params, price=self._price
            )
        except ProviderError as exc:
            return Verdict(False, reason=f"no second opinion from {self._model}: {exc}")
        mode = self._mode(attempt, response.text)
        if same_answers(attempt.output, response.text, mode):
            return Verdict(True, reason=f"{self._model} gave the same answer", score=1.0)
        return Verdict(
            False,
            reason=f"{self._model} answered differently: {response.text[:200]!r}",
            score=0.0,
        )


def agreement(
    model: str,
    *,
    compare: Compare = "auto",
    params: Mapping[str, Any] | None = None,
    price: Price | None = None,
) -> _Agreement:
    """A validator: ``model`` answers the same task, and its answer must match the attempt's."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("agreement needs the name of a second model")
    if compare not in MODES:
        raise ConfigError(f"agreement compare must be one of {', '.join(MODES)}, not {compare!r}")
    return _Agreement(model, compare, params or {}, price)

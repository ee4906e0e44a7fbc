"""``vote(models, k)`` and ``self_consistency(samples, k)``: answers must agree, k of n.

A vote asks other models the same task, one at a time and cheapest first as listed, and passes
as soon as ``k`` of the ``n`` answers (the attempt's own and the voters') agree. The answer it
passes with is that majority's, which may be a voter's rather than the attempt's own; it stops
asking once the outcome is settled either way, so a vote of three costs two calls when the
first voter agrees. ``self_consistency`` is a vote of the attempt's own model with itself: it
asks for ``samples`` more samples of the same question (a replay serves the recorded
``alt_outputs``), which fits code and reasoning tasks sampled at a temperature above zero.

A voter's answer the task already has (an earlier tier's first answer, or an agreement check's
call) is reused, free, so a vote on the second tier that names the first tier's model costs
nothing for that voter. Answers are compared as :func:`cascade.validators.agreement` compares
them. A voter that cannot answer (a provider error after retries) counts as a disagreeing vote.

>>> vote(["claude-3-haiku-20240307", "gpt-3.5-turbo-0125"])
vote(['claude-3-haiku-20240307', 'gpt-3.5-turbo-0125'], k=2)
>>> self_consistency(2)
self_consistency(2, k=2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cascade.errors import ConfigError, ProviderError
from cascade.types import Attempt, Price, Verdict
from cascade.validators.agreement import MODES, Compare, normal_answer, resolve_mode
from cascade.validators.base import CostClass

__all__ = ["SELF", "self_consistency", "vote"]

SELF = "self"
"""A voter that is another sample of the attempt's own model."""


class _Vote:
    cost_class = CostClass.MODEL

    def __init__(
        self,
        voters: tuple[str, ...],
        k: int,
        compare: Compare,
        label: str,
        params: Mapping[str, Any] | None = None,
        voter_params: Mapping[str, Mapping[str, Any]] | None = None,
        voter_prices: Mapping[str, Price] | None = None,
    ) -> None:
        self.voters = voters
        self.k = k
        self._compare = compare
        self._label = label
        self._params = dict(params or {})
        self._voter_params = {model: dict(p) for model, p in (voter_params or {}).items()}
        self._voter_prices = dict(voter_prices or {})

    def __repr__(self) -> str:
        return self._label

    async def __call__(self, attempt: Attempt) -> Verdict:
        if attempt.ask is None or not attempt.messages:
            return Verdict(False, reason="a vote needs a cascade to ask the voters through")
        mode = resolve_mode(self._compare, attempt)
        # (model, text, normal form); the attempt's own answer votes first.
        ballots: list[tuple[str, str, Any]] = [
            (attempt.model, attempt.output, normal_answer(attempt.output, mode))
        ]
        problems: list[str] = []
        samples = 0
        for number, voter in enumerate(self.voters):
            if (settled := self._settled(ballots, len(self.voters) - number)) is not None:
                return settled
            model, sample, price = voter, 0, self._voter_prices.get(voter)
            params: Mapping[str, Any] = self._voter_params.get(voter, self._params)
            if voter == SELF:  # asked as its tier asks it: the same endpoint, key and price
                samples += 1
                model, sample = attempt.model, samples
                params, price = attempt.tier.params, attempt.tier.price
            try:
                response = await attempt.ask(
                    model, attempt.messages, params=params, price=price, sample=sample
                )
            except ProviderError as exc:
                problems.append(f"no answer from {model}: {exc}")
                ballots.append((model, "", None))
                continue
            ballots.append((model, response.text, normal_answer(response.text, mode)))
        settled = self._settled(ballots, 0)
        assert settled is not None  # with no voter left, the outcome is settled
        if problems and not settled.passed:
            return Verdict(False, reason=f"{settled.reason}; {'; '.join(problems)}", score=0.0)
        return settled

    def _settled(self, ballots: list[tuple[str, str, Any]], left: int) -> Verdict | None:
        """The verdict once ``k`` answers agree or no answer can reach ``k``; else ``None``."""
        counts: dict[Any, int] = {}
        for _, _, key in ballots:
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
        own = ballots[0][2]
        winners = [key for key, count in counts.items() if count >= self.k]
        if winners:
            key = own if own in winners else winners[0]
            model, text, _ = next(b for b in ballots if b[2] == key)
            agreed = counts[key]
            reason = f"{agreed} of {len(ballots)} answers agree"
            if key == own:
                return Verdict(True, reason=reason, score=agreed / len(ballots))
            return Verdict(
                True,
                reason=f"{reason}, on {model}'s answer rather than this one",
                score=agreed / len(ballots),
                answer=text,
                answer_model=model,
            )
        if max(counts.values(), default=0) + left >= self.k:
            return None
        others = "; ".join(f"{m}: {t[:80]!r}" for m, t, _ in ballots[1:])
        return Verdict(
            False,
            reason=f"fewer than {self.k} of {len(ballots)} answers agree ({others})",
            score=0.0,
        )


def _check(k: int | None, count: int, compare: str) -> int:
    if compare not in MODES:
        raise ConfigError(f"compare must be one of {', '.join(MODES)}, not {compare!r}")
    n = count + 1
    chosen = n // 2 + 1 if k is None else k
    if not 2 <= chosen <= n:
        raise ConfigError(f"k must be from 2 to {n} (the answer and its {count} voter(s))")
    return chosen


def vote(
    models: Sequence[str],
    *,
    k: int | None = None,
    compare: Compare = "auto",
    params: Mapping[str, Any] | None = None,
    voter_params: Mapping[str, Mapping[str, Any]] | None = None,
    voter_prices: Mapping[str, Price] | None = None,
) -> _Vote:
    """Pass when ``k`` of the answers (this one and ``models``') agree; ``k`` defaults to most.

    ``models`` are asked in the order given, so list the cheapest first, each with ``params``
    (its endpoint and key, say), or its own in ``voter_params``, priced by ``voter_prices``
    where litellm's map has no price; ``"self"`` is another sample of the attempt's own model,
    asked as its tier asks it.
    """
    voters = tuple(models)
    if not voters or not all(isinstance(m, str) and m.strip() for m in voters):
        raise ConfigError("a vote needs the names of one or more other models")
    chosen = _check(k, len(voters), compare)
    extra = "" if compare == "auto" else f", compare={compare!r}"
    label = f"vote({list(voters)!r}, k={chosen}{extra})"
    return _Vote(voters, chosen, compare, label, params, voter_params, voter_prices)


def self_consistency(samples: int = 2, *, k: int | None = None, compare: Compare = "auto") -> _Vote:
    """Pass when ``k`` of the answer and ``samples`` more samples of its own model agree."""
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"self_consistency needs samples >= 1, got {samples!r}")
    chosen = _check(k, samples, compare)
    extra = "" if compare == "auto" else f", compare={compare!r}"
    label = f"self_consistency({samples}, k={chosen}{extra})"
    return _Vote((SELF,) * samples, chosen, compare, label)

"""Drift alarms: a tier's acceptance rate falling, or its audits' disagreement rising.

Per task type and tier, each signal is a stream of yes/no observations: for ``acceptance``,
whether a task that reached the tier was accepted there; for ``disagreement``, whether a shadow
audit of the tier's accepted answer disagreed; for ``escalation:V``, whether an escalation from
the tier was for validator V's rejection (V's share of the escalations rising: the reasons
changed). Results are watched in the order their tasks arrived (were read and leased), not the
order they finished: :class:`InArrivalOrder` holds a result back until every task that arrived
before it has finished, since a task that escalates finishes later than one accepted at once,
and a baseline of the first results to finish would read high.

The baseline is the policy's calibrated rate (``[drift] acceptance`` and ``disagreement``, one
rate per tier, as ``cascade optimize`` measured them), or else the first ``baseline``
observations of the run. A disagreement rate given with the number of audits it was measured on
(``disagreement_audits``) is a sample, not a known rate: the run is tested against it as
against a baseline it measured itself.
Every ``check_every`` observations, the last ``window`` are compared with the baseline by an
exact one-sided test: binomial against a calibrated rate, Fisher's exact test against a
measured one (exact whatever the rate, given the hits of both). The run's ``false_alarm`` rate
is spent over the checks (see :func:`check_level`): each check gets a share, the shares sum to
``false_alarm``, so **with no drift, the chance of any false alarm on a stream over the whole
run is at most** ``false_alarm`` (the union bound; it holds for overlapping windows and for any
length of run). A stream that alarmed stays quiet until it is cleared.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = [
    "Alarm",
    "DriftPlan",
    "DriftWatch",
    "InArrivalOrder",
    "binomial_tail",
    "check_level",
    "fisher_tail",
]

HORIZON = 1000
"""The first horizon of the false-alarm rate's spending; each later one doubles it."""

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class DriftPlan:
    """One task type's drift alarms (a policy's ``[drift]``)."""

    window: int = 100
    """Each check compares the last ``window`` observations with the baseline."""
    baseline: int = 200
    """Observations that measure the baseline, when the policy gives no calibrated rate."""
    check_every: int = 10
    """Observations between checks; the run's false-alarm rate is shared among its checks."""
    false_alarm: float = 0.001
    """The chance of any false alarm on one stream over the whole run, with no drift."""
    on_drift: str = "warn"
    """``warn`` reports; ``escalate`` also starts the task type one tier higher until cleared."""
    acceptance: tuple[float, ...] = ()
    """Calibrated acceptance rates by tier; a tier without one is measured on the run."""
    disagreement: tuple[float, ...] = ()
    """Calibrated audit disagreement rates by tier; a tier without one is measured on the run."""
    disagreement_n: tuple[int, ...] = ()
    """The audits each calibrated disagreement rate was measured on: a tier with both is tested
    against that sample (Fisher's exact test), as against a baseline measured on the run."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """A stream whose observations left their baseline."""

    task_type: str
    tier: int
    signal: str
    baseline_rate: float
    window_rate: float
    p_value: float
    """The check's exact one-sided p-value, below its share of the run's false-alarm rate."""
    observed: int
    """Observations of the stream when it alarmed (baseline included)."""

    def text(self) -> str:
        """The alarm in one line."""
        moved = "fell" if self.signal == "acceptance" else "rose"
        if self.signal.startswith("escalation:"):
            return (f"drift: {self.task_type} tier {self.tier} escalations for "
                    f"{self.signal.split(':', 1)[1]} rose from {self.baseline_rate:.1%} to "
                    f"{self.window_rate:.1%} of them (p {self.p_value:.1g}, after {self.observed} "
                    "escalations)")  # fmt: skip
        return (f"drift: {self.task_type} tier {self.tier} {self.signal} {moved} from "
                f"{self.baseline_rate:.1%} to {self.window_rate:.1%} (p "
                f"{self.p_value:.1g}, after {self.observed} observations)")  # fmt: skip


def check_level(false_alarm: float, check: int, check_every: int) -> float:
    """The level of a stream's ``check``-th check (from 1): the run's rate, spent.

    With ``C`` the number of checks in the first ``HORIZON`` observations, horizon 0 holds
    the first ``C`` checks and horizon ``k`` the next ``C * 2**(k-1)`` (up to ``C * 2**k``);
    horizon ``k`` spends ``false_alarm / ((k+1)(k+2))``, shared equally among its checks. The
    horizons' shares sum to ``false_alarm``, so by the union bound the chance that any check
    of the run errs is at most ``false_alarm``, however long the run.

    >>> [f"{check_level(0.001, check, 10):.2g}" for check in (1, 100, 101, 200, 201)]
    ['5e-06', '5e-06', '1.7e-06', '1.7e-06', '4.2e-07']
    """
    first = max(1, HORIZON // check_every)
    k = math.ceil(math.log2(check / first)) if check > first else 0
    size = first << max(0, k - 1)
    return false_alarm / ((k + 1) * (k + 2) * size)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _tail(log_term: Callable[[int], float], start: int, stop: int) -> float:
    """The sum of ``exp(log_term(k))`` from ``start`` towards ``stop`` (included).

    ``start`` lies beyond the mode, so the terms fall away from it: the sum stops once they
    are negligible.
    """
    step = 1 if stop >= start else -1
    first, last, total = log_term(start), 0.0, 1.0
    for k in range(start + step, stop + step, step):
        term = log_term(k) - first
        if term < min(last, -40.0):
            break
        total, last = total + math.exp(term), term
    return min(1.0, math.exp(first) * total)


def binomial_tail(hits: int, n: int, rate: float, *, upper: bool) -> float:
    """P(X >= hits) (``upper``) or P(X <= hits), for X binomial(n, rate), beyond the mean.

    >>> round(binomial_tail(10, 20, 0.9, upper=False), 8)
    7.15e-06
    """

    def log_term(k: int) -> float:
        return _log_choose(n, k) + k * math.log(rate) + (n - k) * math.log1p(-rate)

    return _tail(log_term, hits, n if upper else 0)


def fisher_tail(base_hits: int, base_n: int, hits: int, n: int, *, upper: bool) -> float:
    """Fisher's exact one-sided p-value: ``hits`` of ``n`` against ``base_hits`` of ``base_n``.

    Under no drift, given the hits of both together, the window's hits are hypergeometric
    whatever the rate, so the test is exact with a measured baseline. ``hits / n`` lies beyond
    ``base_hits / base_n`` on the tested side.

    >>> f"{fisher_tail(135, 150, 25, 50, upper=False):.1g}"
    '1e-08'
    """
    total = base_hits + hits
    whole = _log_choose(base_n + n, total)

    def log_term(k: int) -> float:
        return _log_choose(n, k) + _log_choose(base_n, total - k) - whole

    return _tail(log_term, hits, min(n, total) if upper else max(0, total - base_n))


@dataclass
class _Stream:
    plan: DriftPlan
    rising: bool
    """Alarm on a rise (disagreement) rather than a fall (acceptance)."""
    fixed: float | None = None
    base_hits: int = 0
    base_n: int = 0
    window: deque[bool] = field(default_factory=deque)
    seeded: bool = False
    """The baseline is a calibration sample (``base_hits`` of ``base_n``), not measured here."""
    seen: int = 0
    checks: int = 0
    alarmed: bool = False

    def add(self, hit: bool) -> tuple[float, float, float] | None:
        """Take one observation; (baseline rate, window rate, p-value) when it alarms."""
        self.seen += 1
        if self.fixed is None and not self.seeded and self.base_n < self.plan.baseline:
            self.base_n += 1
            self.base_hits += hit
            return None
        self.window.append(hit)
        if len(self.window) > self.plan.window:
            self.window.popleft()
        full = len(self.window) == self.plan.window
        if self.alarmed or not full or self.seen % self.plan.check_every:
            return None
        self.checks += 1
        hits, n = sum(self.window), len(self.window)
        base = self.fixed if self.fixed is not None else self.base_hits / self.base_n
        if (hits / n <= base) if self.rising else (hits / n >= base):
            return None
        if self.fixed is not None:
            p = binomial_tail(hits, n, base, upper=self.rising)
        else:
            p = fisher_tail(self.base_hits, self.base_n, hits, n, upper=self.rising)
        if p > check_level(self.plan.false_alarm, self.checks, self.plan.check_every):
            return None
        self.alarmed = True
        return base, hits / n, p


class InArrivalOrder(Generic[Item]):
    """Items that finish out of order, given back in the order they arrived.

    An item is held until every item that arrived before it is settled: ``settled(below)``
    gives back, in arrival order, the held items that arrived before ``below``, the first
    arrival still unfinished (``None``: none is).

    >>> order: InArrivalOrder[str] = InArrivalOrder()
    >>> order.hold(2, "b"); order.hold(3, "c"); order.settled(1)
    []
    >>> order.hold(1, "a"); order.settled(3)
    ['a', 'b']
    """

    def __init__(self) -> None:
        self._held: list[tuple[int, int, Item]] = []
        self._count = 0

    def hold(self, arrival: int, item: Item) -> None:
        """Hold ``item``, which arrived ``arrival``-th."""
        self._count += 1  # ties keep the order they were held in
        heapq.heappush(self._held, (arrival, self._count, item))

    def settled(self, below: int | None) -> list[Item]:
        """The held items that arrived before ``below`` (all when ``None``), in arrival order."""
        out = []
        while self._held and (below is None or self._held[0][0] < below):
            out.append(heapq.heappop(self._held)[2])
        return out

    def __len__(self) -> int:
        return len(self._held)


class DriftWatch:
    """The drift streams of a run's task types (see the module's doc)."""

    def __init__(self, plans: Mapping[str, DriftPlan]) -> None:
        self._plans = dict(plans)
        self._streams: dict[tuple[str, int, str], _Stream] = {}
        self._escalations: dict[tuple[str, int], int] = {}
        self._reasons: dict[tuple[str, int], set[str]] = {}

    def watches(self, task_type: str) -> bool:
        """Whether the task type has drift alarms."""
        return task_type in self._plans

    def result(
        self, task_type: str, status: str, tier: int | None, tiers_tried: int
    ) -> list[Alarm]:
        """A task's result, in arrival order: each tier it reached was accepted at, or passed."""
        if task_type not in self._plans or tiers_tried < 1:
            return []
        last = tier if tier is not None else tiers_tried - 1
        alarms = []
        for reached in range(max(0, last - tiers_tried + 1), last + 1):
            accepted = status == "accepted" and reached == last
            alarm = self._add(task_type, reached, "acceptance", accepted)
            alarms += [alarm] if alarm is not None else []
        return alarms

    def audit(self, task_type: str, tier: int, disagreed: bool) -> Alarm | None:
        """An audit's verdict on one of ``tier``'s accepted answers."""
        if task_type not in self._plans:
            return None
        return self._add(task_type, tier, "disagreement", disagreed)

    def escalation(self, task_type: str, tier: int, failed: Collection[str]) -> list[Alarm]:
        """An escalation from ``tier``, for the rejections of the validators ``failed``.

        A validator first seen late starts with a baseline of the escalations before it, in
        none of which it took part.
        """
        if task_type not in self._plans:
            return []
        seen = self._escalations.get((task_type, tier), 0)
        self._escalations[(task_type, tier)] = seen + 1
        names = self._reasons.setdefault((task_type, tier), set())
        for name in set(failed) - names:
            names.add(name)
            stream = self._stream(task_type, tier, f"escalation:{name}")
            stream.base_n = min(seen, self._plans[task_type].baseline)
            stream.seen = seen
        alarms = [self._add(task_type, tier, f"escalation:{name}", name in failed)
                  for name in sorted(names)]  # fmt: skip
        return [alarm for alarm in alarms if alarm is not None]

    def _stream(self, task_type: str, tier: int, signal: str) -> _Stream:
        key = (task_type, tier, signal)
        stream = self._streams.get(key)
        if stream is None:
            plan = self._plans[task_type]
            rising = signal != "acceptance"
            rates = {"acceptance": plan.acceptance, "disagreement": plan.disagreement}
            calibrated = rates.get(signal, ())
            given = calibrated[tier] if tier < len(calibrated) else None
            sample = plan.disagreement_n if signal == "disagreement" else ()
            if given is not None and tier < len(sample):  # an estimate, with its sample size
                n = sample[tier]
                stream = _Stream(plan, rising, None, round(given * n), n, seeded=True)
            else:
                stream = _Stream(plan, rising, given)
            self._streams[key] = stream
        return stream

    def _add(self, task_type: str, tier: int, signal: str, hit: bool) -> Alarm | None:
        stream = self._stream(task_type, tier, signal)
        found = stream.add(hit)
        if found is None:
            return None
        return Alarm(task_type, tier, signal, found[0], found[1], found[2], stream.seen)

"""After the switch: what a policy certified on a dataset's own traffic keeps watching.

A dataset ``cascade import`` made knows which model served each logged request (its answers
are marked ``"served": true``; ``cascade truth --by served --served MODEL`` names it where they
are not). A policy ``cascade optimize`` writes from such a dataset then:

- audits a share of each tier's accepted answers against that model (``[audit]``, with the
  settings the user's policy gives its tier of that model): the cheaper ladder's answers keep
  being compared with the answers the traffic used to get, the top tier's too when it is
  another model (see :func:`cascade.audit.plan.audited_tiers`);
- calibrates its drift alarms on the same comparison: ``[drift] disagreement`` is each tier's
  rate of disagreement with the served model on the training tasks, replayed, as the audit
  compares answers, and ``disagreement_audits`` the audits it was measured on. The run tests
  its audits against that sample with Fisher's exact test (a rate measured on a few hundred
  tasks is an estimate: taken as exact, it would make false alarms far likelier than the
  stated ``false_alarm``). It tells when the ladder stops reproducing the served answers as
  often as it did when certified.

A user's policy that has an ``[audit]`` of its own keeps it, and nothing is calibrated for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.backends.replay import read_responses
from cascade.bench.evaluate import LadderScore
from cascade.optimize.pipeline import Optimized, Options
from cascade.traffic.truth import read_truth

__all__ = ["Watch", "audits_served", "served_model", "watch_served"]

_FLOOR, _CEILING = 0.001, 0.999
"""A calibrated rate is kept inside (0, 1): a drift test against 0 or 1 alarms on one answer."""


@dataclass(frozen=True, slots=True)
class Watch:
    """What a written policy of one kind adds to watch its served model after the switch."""

    audit: dict[str, Any]
    """Its ``[audit]`` table."""
    disagreement: list[float]
    """Its ``[drift] disagreement``: each tier's rate on the training tasks, replayed."""
    audits: list[int]
    """Its ``[drift] disagreement_audits``: the audits each rate was measured on."""

    def note(self) -> str:
        """The line the written policy's header says it in."""
        return (
            f"[audit] asks {self.audit['model']}, the model that served this traffic, again on "
            f"{self.audit['share']:.0%} of the accepted answers of each tier of another model, "
            "and [drift] "
            "disagreement is each tier's rate of disagreement with it on the training tasks, "
            "replayed: after the switch, an alarm says when the ladder stops reproducing the "
            "served answers as often as it did here."
        )


def served_model(folder: Path) -> str | None:
    """The model that served most of a dataset's tasks, or ``None`` when it does not say.

    The served models are those ``truth.json`` names (``cascade truth --by served``), else
    the models of the answers ``cascade import`` marked served.
    """
    truth = read_truth(folder)
    named = set(truth.served) if truth is not None and truth.by == "served" else set()
    tasks: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for _, row in read_responses(folder):
        model, task = str(row["model"]), str(row["task_id"])
        if (model in named or row.get("served") is True) and (task, model) not in seen:
            seen.add((task, model))
            tasks[model] += 1
    if not tasks:
        return None
    return min(tasks, key=lambda model: (-tasks[model], model))


def audits_served(found: Optimized, kind: str) -> bool:
    """Whether the written policy of ``kind`` gets a watch: not when the user's has an ``[audit]``.

    A user's policy of that kind with an ``[audit]`` of its own keeps it (nothing is calibrated
    for it), so its replay needs no audit.
    """
    user = found.user
    return user is None or user.task_type != kind or "audit" not in user.data


def watch_served(
    found: Optimized, scores: Mapping[str, LadderScore], options: Options, served: str
) -> dict[str, Watch]:
    """Per kind of ``scores``: the audit and calibration its written policy adds.

    ``scores`` holds, per kind :func:`audits_served` accepts, the written policy's replay on
    its training tasks with every accepted answer audited against ``served``'s recorded answer
    (``AuditPlan(share=1.0, model=served)``), as a run's audit would compare them; the replay
    itself is :func:`cascade.optimize.written.calibrate`'s.
    """
    user = found.user
    watches: dict[str, Watch] = {}
    for kind, score in scores.items():
        rates, audits = _disagreement(kind, score)
        table: dict[str, Any] = {"share": options.audit_share, "model": served, "compare": "auto"}
        mine = user is not None and user.task_type == kind
        own = user.tiers.get(served, {}) if mine and user is not None else {}
        table |= {key: own[key] for key in ("params", "price") if key in own}
        watches[kind] = Watch(table, rates, audits)
    return watches


def _disagreement(kind: str, score: LadderScore) -> tuple[list[float], list[int]]:
    """Each tier's disagreement rate with the served model, and its audits, until one has none."""
    by_tier = (score.audit or {}).get("by_tier", {})
    rates: list[float] = []
    audits: list[int] = []
    for tier in range(len(score.reached_by_tier)):
        figures = by_tier.get(f"{kind} tier {tier}")
        if not figures or not figures["audited"]:
            break
        rate = figures["disagreed"] / figures["audited"]
        rates.append(round(min(_CEILING, max(_FLOOR, rate)), 4))
        audits.append(int(figures["audited"]))
    return rates, audits

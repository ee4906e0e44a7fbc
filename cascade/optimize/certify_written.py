"""Certify what is written: each candidate's policy files, replayed through the engine.

The search scores ladders by array arithmetic (:mod:`cascade.optimize.scoring`), which knows
nothing of what the written policy adds: a user's ``[budget]`` and cost caps, its prompt and
examples, the engine's own decisions. So the walk of :func:`cascade.optimize.certify.walk` is
made again on the same fixed sequence, with each candidate's right answers on the
certification part counted by writing its policy files (as they will be written) into a
scratch folder and replaying them through the engine on those tasks. The sequence still comes
from the selection part alone, so the guarantee holds as stated, and it holds for the files
written.

Where the replay and the simulation disagree on a certification task, the figures say which
tasks; the certified count is the replay's.

A library: it writes scratch files and returns values, and never prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cascade.bench.evaluate import score_policy
from cascade.bench.suite import ByKind, default_validators, policy_cascades
from cascade.optimize.certify import CERTIFY, Certified, walk
from cascade.optimize.pipeline import Optimized, Options, kind_parts
from cascade.optimize.routing import per_task
from cascade.optimize.search import Mix
from cascade.optimize.written import policy_arg, write_policies
from cascade.store.verdicts import VerdictCache

__all__ = ["WrittenCount", "certify_written"]


@dataclass
class WrittenCount:
    """Counts a mix's right answers on the certification part by replaying its written policy."""

    found: Optimized
    options: Options
    rights: dict[tuple[tuple[str, int], ...], dict[str, bool]] = field(default_factory=dict)
    """Per mix (its picks): each certification task's replayed right answer."""

    def certifying(self, kind: str) -> list[str]:
        """The ids of ``kind``'s certification tasks."""
        ladders = self.found.found[kind]
        parts = kind_parts(len(ladders.table.task_ids), kind, self.options)
        return [t for t, p in zip(ladders.table.task_ids, parts, strict=True) if p == CERTIFY]

    def __call__(self, mix: Mix) -> dict[str, tuple[float, int]]:
        """Per kind, the mix's right answers and tasks on the certification part, replayed once."""
        replayed = self.rights.get(_key(mix))
        if replayed is None:
            replayed = self._replay(mix)
            self.rights[_key(mix)] = replayed
        counts: dict[str, tuple[float, int]] = {}
        for kind in mix.picks:
            ids = self.certifying(kind)
            counts[kind] = (float(sum(replayed[t] for t in ids)), len(ids))
        return counts

    def _replay(self, mix: Mix) -> dict[str, bool]:
        """Each certification task's right answer under the mix's written policy files."""
        ids = {t for kind in mix.picks for t in self.certifying(kind)}
        data = self.found.data.subset(ids)
        cache = VerdictCache() if self.options.cache else None
        with tempfile.TemporaryDirectory(prefix="cascade-certify-") as folder:
            paths = {kind: Path(folder) / f"{kind}.toml" for kind in mix.picks}
            headers = {kind: ["A candidate under certification (scratch)."] for kind in paths}
            write_policies(self.found, mix.picks, paths, headers, self.options)
            policy = str(policy_arg(paths))
            cascades = policy_cascades(policy, data, ByKind(default_validators(cache)), cache)
            score = asyncio.run(score_policy(data, cascades))
        return {t.id: r for t, r in zip(data.tasks, score.rights, strict=True)}

    def differences(self, mix: Mix) -> list[str]:
        """Certification tasks where the simulation and the replay of ``mix`` disagree."""
        replayed = self.rights.get(_key(mix), {})
        found: list[str] = []
        for kind, index in mix.picks.items():
            ladders = self.found.found[kind]
            router = self.found.routers.get(kind)
            chances = router.written if router is not None else None
            simulated, _costs = per_task(ladders, index, chances)
            for task_id, right in zip(ladders.table.task_ids, simulated, strict=True):
                if task_id in replayed and abs(float(right) - replayed[task_id]) > 1e-9:
                    found.append(task_id)
        return sorted(found)


def _key(mix: Mix) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, int(i)) for k, i in mix.picks.items()))


def certify_written(found: Optimized, options: Options) -> Optimized:
    """The same fixed sequence walked again on the written policies' replays.

    Returns the search with that certification in place of the simulated one; its facts name
    the certification tasks on which the chosen candidate's replay and simulation disagree
    (``simulation_differs_on``).
    """
    count = WrittenCount(found, options)
    simulated = found.result
    result: Certified = walk(
        found.found, simulated.planned, simulated.confidence, count, per_kind=options.per_kind
    )
    differences: list[str] = []
    chosen = result.chosen
    if chosen is not None:
        mix = next(m for _, m in simulated.planned if dict(m.picks) == dict(chosen.picks))
        differences = count.differences(mix)
    facts = found.facts | {
        "target_pass_rate": result.target,
        "candidates_tested": len(result.sequence),
        "certified_candidates": len(result.certified),
        "certified_by": "a replay of each candidate's written policy through the engine",
        "simulation_differs_on": differences,
        "simulated_walk_certified": len(simulated.certified),
    }
    if chosen is not None:
        facts["simulated_certification_pass_rate"] = round(chosen.simulated_rate, 6)
    return dataclasses.replace(found, result=result, facts=facts)

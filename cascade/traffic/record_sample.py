"""The tasks ``cascade record`` asks about: a seeded sample, stratified by task kind.

Each kind gets its share of the sample in proportion to its tasks (largest remainders first,
ties by kind name), and at least one task whenever the sample has room for every kind. Within
a kind, the tasks come in the order of that kind's own random stream under the seed (the
stream ``cascade optimize`` splits with), so the draw of one kind never depends on the others
and the same dataset, size and seed always give the same sample.

>>> from cascade.types import Task
>>> tasks = [Task(f"q{n}", "x", type="qa") for n in range(6)] + [Task("c0", "x", type="code")]
>>> [t.id for t in stratified_sample(tasks, 3, seed=0)] == [
...     t.id for t in stratified_sample(tasks, 3, seed=0)]
True
>>> sorted(t.type for t in stratified_sample(tasks, 3, seed=0))
['code', 'qa', 'qa']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cascade.bench.dataset import kind_stream
from cascade.errors import ConfigError
from cascade.types import Task

__all__ = ["allocate", "stratified_sample"]

_PURPOSE = 7
"""The record sample's own stream of each kind, apart from the split and the audit draws."""


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """How many of ``n`` sampled tasks each kind gets, from the kinds' ``sizes``."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    exact = {kind: n * size / total for kind, size in sizes.items()}
    share = {kind: math.floor(value) for kind, value in exact.items()}
    by_remainder = sorted(exact, key=lambda k: (share[k] - exact[k], k))
    for kind in by_remainder[: n - sum(share.values())]:
        share[kind] += 1
    if n >= len(sizes):  # room for every kind: none is left out
        for kind in sorted(k for k, got in share.items() if got == 0):
            donor = max(sorted(share), key=lambda k: share[k])
            share[donor] -= 1
            share[kind] = 1
    return share


def stratified_sample(tasks: Sequence[Task], n: int, *, seed: int) -> list[Task]:
    """``n`` of ``tasks`` (all of them when there are fewer), stratified by kind, in file order."""
    if n < 1:
        raise ConfigError(f"--sample must be at least 1, got {n}")
    by_kind: dict[str, list[Task]] = {}
    for task in tasks:
        by_kind.setdefault(task.type, []).append(task)
    shares = allocate({kind: len(found) for kind, found in by_kind.items()}, n)
    chosen: set[str] = set()
    for kind, found in by_kind.items():
        order = kind_stream(seed, kind, _PURPOSE).permutation(len(found))
        chosen.update(found[int(i)].id for i in order[: shares[kind]])
    return [task for task in tasks if task.id in chosen]

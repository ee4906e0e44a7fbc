"""The sample ``cascade record`` asks about: seeded, stratified by task kind, deterministic."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascade.errors import ConfigError
from cascade.traffic.record_sample import allocate, stratified_sample
from cascade.types import Task


def tasks_of(sizes: dict[str, int]) -> list[Task]:
    """``sizes[kind]`` tasks of each kind, kinds interleaved as a log would have them."""
    found = [Task(f"{kind}-{n}", "x", type=kind) for kind, size in sizes.items()
             for n in range(size)]  # fmt: skip
    return sorted(found, key=lambda t: (int(t.id.rsplit("-", 1)[1]), t.type))


@pytest.mark.parametrize(
    ("sizes", "n", "expected"),
    [
        ({"a": 50, "b": 30, "c": 20}, 10, {"a": 5, "b": 3, "c": 2}),
        ({"a": 1, "b": 1, "c": 98}, 10, {"a": 1, "b": 1, "c": 8}),
        ({"a": 2, "b": 2, "c": 2}, 4, {"a": 2, "b": 1, "c": 1}),
        ({"a": 3, "b": 1}, 10, {"a": 3, "b": 1}),
        ({"a": 10, "b": 10, "c": 10}, 2, {"a": 1, "b": 1, "c": 0}),
    ],
    ids=["proportional", "small-kinds-kept", "ties-by-name", "all", "fewer-than-kinds"],
)
def test_each_kind_gets_its_share(sizes: dict[str, int], n: int, expected: dict[str, int]) -> None:
    """Shares follow the kinds' sizes; a small kind still gets one when there is room."""
    assert allocate(sizes, n) == expected


def test_the_same_seed_draws_the_same_sample_and_another_seed_another() -> None:
    """Deterministic under a seed, different under another; file order kept."""
    tasks = tasks_of({"a": 40, "b": 20})
    first = [t.id for t in stratified_sample(tasks, 12, seed=5)]
    assert first == [t.id for t in stratified_sample(tasks, 12, seed=5)]
    assert first != [t.id for t in stratified_sample(tasks, 12, seed=6)]
    order = [t.id for t in tasks]
    assert first == sorted(first, key=order.index)


def test_a_kind_draws_the_same_tasks_whatever_the_other_kinds() -> None:
    """Each kind draws from its own stream: adding another kind leaves its tasks as they were."""
    alone = stratified_sample(tasks_of({"a": 30}), 6, seed=1)
    mixed = stratified_sample(tasks_of({"a": 30, "b": 30}), 12, seed=1)
    assert {t.id for t in alone} == {t.id for t in mixed if t.type == "a"}


def test_a_sample_below_one_is_refused() -> None:
    """--sample 0 is a mistake, said so."""
    with pytest.raises(ConfigError, match="--sample must be at least 1"):
        stratified_sample(tasks_of({"a": 3}), 0, seed=0)


@given(
    sizes=st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 40), min_size=1),
    n=st.integers(1, 200),
    seed=st.integers(0, 2**32),
)
def test_the_sample_has_its_size_and_each_kind_its_proportional_share(
    sizes: dict[str, int], n: int, seed: int
) -> None:
    """min(n, tasks) distinct tasks; no kind above its proportional share rounded up (or one).

    When every kind's share is at least one, each kind is within one task of it; when the
    sample has room for every kind, every kind is in it.
    """
    tasks = tasks_of(sizes)
    sample = stratified_sample(tasks, n, seed=seed)
    assert len(sample) == len({t.id for t in sample}) == min(n, len(tasks))
    total = sum(sizes.values())
    counts = Counter(t.type for t in sample)
    shares = {kind: n * size / total for kind, size in sizes.items()}
    for kind, size in sizes.items():
        if n >= total:
            assert counts[kind] == size
            continue
        assert counts[kind] <= max(1, math.ceil(shares[kind]))
        if min(shares.values()) >= 1:
            assert abs(counts[kind] - shares[kind]) < 1
        if n >= len(sizes):
            assert counts[kind] >= 1

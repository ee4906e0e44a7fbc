"""Fixed-sequence certification on a sequence built by hand: the walk stops at the first failure.

The guarantee holds only if nothing after the first candidate that fails is certified, even a
candidate that would pass on its own. Three ladders of one kind are scored so that the
sequence is known in advance (the safest first, the cheapest last; every selection fold alike,
so cross-validation takes nothing off), and on the certification part the middle one fails
while the last would pass.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
from scipy.stats import binom

from cascade.optimize.certify import CERTIFY, certify
from cascade.optimize.search import Ladders
from cascade.optimize.table import KindTable

TARGET, CONFIDENCE = 0.8, 0.9
PART = 20
"""Tasks in each selection fold and in the certification part."""


def _ladders(certifying_right: tuple[int, int, int]) -> Ladders:
    """Ladders safest (A), middle (B), cheapest (C): 95 %, 90 %, 85 % right on every fold."""
    folds = CERTIFY  # the selection folds come before the certification part
    rights = np.array(
        [
            [right] * folds + [certified]
            for right, certified in zip((19, 18, 17), certifying_right, strict=True)
        ],
        dtype=np.float32,
    )
    costs = np.array([[3.0] * (folds + 1), [2.0] * (folds + 1), [1.0] * (folds + 1)], np.float32)
    return Ladders(
        table=cast("KindTable", None),  # the walk reads scores, never the table
        gates=(),
        tiers=np.array([[-1, -1, 0], [-1, -1, 1], [-1, -1, 2]], dtype=np.intp),
        rights=rights,
        costs=costs,
        sizes=np.full(folds + 1, PART, dtype=np.intp),
        searched=0,
    )


def test_nothing_past_the_first_failure_is_certified() -> None:
    """A passes, B fails, C would pass: the walk stops at B, and only A is certified."""
    result = certify({"kind": _ladders((20, 16, 20))}, TARGET, CONFIDENCE)
    safest, middle = result.sequence  # C is never tested
    assert [dict(c.picks) for c in result.sequence] == [{"kind": 0}, {"kind": 1}]
    # All 20 right: P(20 of 20 | p) = p**20 = 0.1 at the bound, so p = 0.1 ** (1 / 20).
    assert safest.bound == pytest.approx(0.1 ** (1 / 20))
    assert safest.bound == pytest.approx(0.891251, abs=1e-6)
    # 16 of 20: the bound is the p at which 16 or more right has probability 0.1.
    assert binom.sf(15, PART, middle.bound) == pytest.approx(1 - CONFIDENCE)
    assert middle.bound < TARGET
    assert result.certified == (safest,)
    assert result.chosen == safest


def test_with_no_failure_the_same_walk_certifies_all_three_and_chooses_the_cheapest() -> None:
    """B passing instead: C, all 20 right, is tested, certified at 0.1 ** (1 / 20), and chosen."""
    result = certify({"kind": _ladders((20, 20, 20))}, TARGET, CONFIDENCE)
    assert [dict(c.picks) for c in result.sequence] == [{"kind": 0}, {"kind": 1}, {"kind": 2}]
    assert result.certified == result.sequence
    cheapest = result.sequence[-1]
    assert cheapest.bound == pytest.approx(0.1 ** (1 / 20))
    assert cheapest.bound > TARGET
    assert result.chosen == cheapest

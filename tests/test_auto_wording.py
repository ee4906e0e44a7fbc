"""An ``auto`` policy's header says how its target was reached: the top of its sequence, or not.

Before, every ``auto`` header called its target "the highest the selection part expected to
certify", even when the walk stopped on the climb, below that top.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cascade.optimize.certify import walk
from cascade.optimize.pipeline import Optimized, Options, guarantee_facts, search
from cascade.optimize.search import Mix
from cascade.optimize.written import policy_header

BFCL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bfcl-simple"
pytestmark = pytest.mark.skipif(not BFCL.is_dir(), reason="../shared/datasets is not beside")

OPTIONS = Options(target=None, out="unused")


@pytest.fixture(scope="module")
def found() -> Optimized:
    """bfcl-simple searched at ``auto``, by the simulation alone."""
    return search(str(BFCL), OPTIONS)


def _walked_to(found: Optimized, stop: int | None) -> tuple[Optimized, str]:
    """The search walked again, failing at pair ``stop`` (none: passing all); its header line."""
    pairs = found.result.planned
    total = 1_000_000  # so many tasks that the bound sits just under the rate

    def count(_mix: Mix) -> dict[str, tuple[float, int]]:
        # Below pair ``stop``'s target, above the one before it.
        rate = 1.0 if stop is None else pairs[stop][0] - 0.0025
        return {"function_call": (total * rate, total)}

    result = walk(found.found, pairs, OPTIONS.confidence, count)
    walked = dataclasses.replace(found, result=result)
    facts = walked.facts | {"target_pass_rate": result.target}
    facts["guarantee"] = guarantee_facts(walked, OPTIONS)
    header = policy_header(walked, facts, OPTIONS)["function_call"]
    return walked, next(line for line in header if line.startswith("Chosen on"))


def test_a_walk_stopped_on_the_climb_says_its_target_is_the_highest_it_certified(
    found: Optimized,
) -> None:
    """Stopped below the top target: the header names the target certified, and the top apart."""
    walked, line = _walked_to(found, 10)
    top = found.result.planned[-1][0]
    assert walked.result.target < top
    assert f"reach {walked.result.target:.1%} (the highest target of its sequence that " in line
    assert f"certified: the walk stopped below {top:.1%}, the highest the selection" in line


def test_a_walk_that_reaches_the_top_says_so(found: Optimized) -> None:
    """Certified at the top target: the header says the selection part expected to certify it."""
    walked, line = _walked_to(found, None)
    assert walked.result.target == found.result.planned[-1][0]
    assert "(the highest the selection part expected to certify)" in line
    assert "of its sequence" not in line

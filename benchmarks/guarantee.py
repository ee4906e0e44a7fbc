"""Check ``cascade optimize``'s guarantee on a recorded suite by simulating many random splits.

Usage: python benchmarks/guarantee.py DATASET [--target X|auto] [--confidence 0.9] [--splits 200]
       [--select 0.5] [--holdout 0.3] [--only-train] [--router] [--broken]

Each split holds out ``--holdout`` of every kind, chooses exactly as ``cascade optimize`` does
on the rest, and scores the choice on the held-out tasks. The guarantee is judged against the
truth (see cascade/optimize/splits.py): over all splits, certified or not, the share in which a
ladder was certified and its pass rate on the whole suite (the population's stand-in) is below
the target must be at most 1 - confidence. Beside it: how often something was certified, and
the held-out pass rate and cost against the best single model (the best on the split's
training part), the cheapest model as good as the best (whose held-out pass rate is within the
held-out best's 95 % interval, as ``cascade optimize`` reports it) and the oracle, over the
certified splits.
``--broken`` runs a certifier broken on purpose (its bound five points above the pass rate it
saw), to show that the check fails when the guarantee does not hold. ``--only-train`` runs on
the training split of seed 0 alone, so that a setting can be chosen without looking at the
tasks ``cascade optimize`` holds out.
``--router`` lets ladders have a start-tier router, fit on each split's selection part (the
tasks' prompts as the default ``{input}`` sends them), as ``cascade optimize --router`` does,
and compares each split's held-out figures with the same split's without routers.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from unittest.mock import patch

import numpy as np

from cascade.bench.dataset import Dataset, load_dataset, split_ids
from cascade.engine import first_messages
from cascade.optimize.routing import Rows, rows_of
from cascade.optimize.splits import SplitResult, failure_share, run_split
from cascade.optimize.table import KindTable, kind_table
from cascade.store.verdicts import VerdictCache


def _tables(path: str, only_train: bool, max_reasks: int) -> tuple[Dataset, dict[str, KindTable]]:
    data = load_dataset(path)
    if only_train:
        data = data.subset(split_ids(data, 0.3, 0)[0])
    cache = VerdictCache()
    return data, {
        kind: kind_table(data, kind, max_reasks=max_reasks, cache=cache)[0]
        for kind in sorted({t.type for t in data.tasks})
    }


def _rows(data: Dataset, tables: dict[str, KindTable]) -> dict[str, Rows]:
    tasks = {t.id: t for t in data.tasks}
    return {
        kind: rows_of(tasks, table.task_ids, lambda t: first_messages(t, "{input}"))
        for kind, table in tables.items()
    }


def _summary(results: list[SplitResult], confidence: float) -> list[str]:
    certified = np.array([r.certified for r in results])
    failures = failure_share(results)
    verdict = "holds" if failures <= 1 - confidence + 1e-12 else "FAILS"
    rows = [
        f"splits: {len(results)}; a ladder was certified in {certified.mean():.1%} of them",
        f"certified, with a true pass rate (the whole suite's) below the target: "
        f"{sum(r.failed for r in results)} of {len(results)} splits, {failures:.1%} "
        f"(the guarantee allows {1 - confidence:.1%}): {verdict}",
    ]
    if not certified.any():
        return rows
    return [*rows, *_held_out([r for r in results if r.certified])]


def _held_out(results: list[SplitResult]) -> list[str]:
    """The certified splits' targets, and their held-out figures beside the single models'."""
    targets = np.array([r.target for r in results])
    held = np.array([r.held_rate for r in results])
    best_rate = np.array([r.best_rate for r in results])
    equal_rate = np.array([r.equal_rate for r in results])
    cost = np.array([r.held_cost for r in results])
    best_cost = np.array([r.best_cost for r in results])
    equal_cost = np.array([r.equal_cost for r in results])
    oracle = np.array([r.oracle_cost for r in results])
    equals = Counter(r.equal_model for r in results).most_common(3)
    return [
        f"targets: {targets.min():.1%} to {targets.max():.1%} (mean {targets.mean():.1%})",
        f"held-out pass rate, mean: ladder {held.mean():.3f}, best single model "
        f"{best_rate.mean():.3f}, cheapest model as good as the best {equal_rate.mean():.3f}; "
        f"ladder at or above the best in {(held >= best_rate - 1e-12).mean():.1%} of certified "
        f"splits, at or above the cheapest as good in {(held >= equal_rate - 1e-12).mean():.1%}",
        f"held-out cost as a share of the best single model's, mean: ladder "
        f"{(cost / best_cost).mean():.1%}, cheapest model as good as the best "
        f"{(equal_cost / best_cost).mean():.1%}, oracle {(oracle / best_cost).mean():.1%}",
        f"held-out cost of the ladder against the cheapest model as good as the best: "
        f"x{(cost / equal_cost).mean():.2f} mean, x{np.median(cost / equal_cost):.2f} median; "
        # Ladder costs are summed in float32: a relative margin, not an absolute one.
        f"cheaper in {(cost < equal_cost * (1 - 1e-6)).mean():.1%} of certified splits",
        "the best single model is the best on each split's training part; the cheapest as "
        "good is the cheapest whose held-out pass rate is in the held-out best's 95 % "
        "interval, as cascade optimize reports it: "
        + ", ".join(f"{model} in {count}" for model, count in equals),
    ]


def _overstated(right: float, total: int, _confidence: float) -> float:
    """A broken bound: five points above the pass rate seen."""
    return right / max(1, total) + 0.05


def main() -> None:
    """Run the splits and print the shares."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--target", help="a pass rate, or auto (the default)", default="auto")
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--select", type=float, default=0.5)
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--max-reasks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only-train", action="store_true")
    parser.add_argument("--router", action="store_true")
    parser.add_argument("--broken", action="store_true", help="a certifier broken on purpose")
    args = parser.parse_args()
    if args.broken:
        patch("cascade.optimize.certify.lower_bound", _overstated).start()
    started = time.perf_counter()
    data, tables = _tables(args.dataset, args.only_train, args.max_reasks)
    rows = _rows(data, tables) if args.router else None
    built = time.perf_counter() - started
    target = None if args.target == "auto" else float(args.target)
    rng = np.random.default_rng(args.seed)
    shares = {"holdout": args.holdout, "select": args.select}
    results, plain = [], []
    for _ in range(args.splits):
        state = rng.bit_generator.state
        if rows is not None:  # the same split without routers, to compare with
            plain.append(run_split(tables, target, args.confidence, rng, **shares))
            rng.bit_generator.state = state
        results.append(run_split(tables, target, args.confidence, rng, rows=rows, **shares))
    spent = time.perf_counter() - started - built
    print(f"{args.dataset}: target {args.target}, confidence {args.confidence}, select "
          f"{args.select}{' (training split only)' if args.only_train else ''}"
          f"{', with routers' if args.router else ''}"
          f"{', certifier BROKEN on purpose' if args.broken else ''}")  # fmt: skip
    print(f"tables {built:.1f} s, {args.splits} splits {spent:.1f} s")
    for row in _summary(results, args.confidence):
        print("  " + row)
    if plain:
        print("  " + _paired(plain, results))


def _paired(plain: list[SplitResult], routed: list[SplitResult]) -> str:
    """How routers changed the held-out figures of the splits both certified."""
    both = [(a, b) for a, b in zip(plain, routed, strict=True) if a.certified and b.certified]
    if not both:
        return "with and without routers: no split certified both ways"
    ratio = np.array([b.held_cost / a.held_cost for a, b in both if a.held_cost > 0])
    cheaper = sum(b.held_cost < a.held_cost - 1e-12 for a, b in both)
    dearer = sum(b.held_cost > a.held_cost + 1e-12 for a, b in both)
    rates = np.array([(a.held_rate, b.held_rate) for a, b in both])
    return (
        f"against the same {len(both)} splits without routers (both certified): held-out cost "
        f"x{np.median(ratio):.3f} median, x{np.exp(np.log(ratio).mean()):.3f} geometric mean; "
        f"cheaper in {cheaper}, dearer in {dearer}; pass rate {rates[:, 0].mean():.3f} -> "
        f"{rates[:, 1].mean():.3f}"
    )


if __name__ == "__main__":
    main()

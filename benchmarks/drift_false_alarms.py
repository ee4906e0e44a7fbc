"""Drift alarms on stable simulated runs: the share of runs with any false alarm, per setting.

Each run is 3,000 tasks of one task type on a two-tier ladder, leased in order to 16 workers.
The cheap tier accepts a task with a fixed probability (90 %); a task it rejects climbs to the
dear tier, which accepts it. An accepted task takes an exponential time (mean 1); an escalated
one takes that plus the dear tier's call (mean 3), so it finishes later, and the results come
in another order than the tasks arrived. Each result goes, as it finishes, through the same
code as a run's (:class:`cascade.audit.drift.InArrivalOrder` holding it back until every task
that arrived before it has finished, then :class:`cascade.audit.drift.DriftWatch`), and beside
it straight into a second watch in completion order, as runs fed it before.

For each setting it prints the stated rate (``false_alarm``, per stream and run), the share of
stable runs that raised any alarm (with its 95 % upper bound), the baseline the run measured
(mean of its first ``baseline`` observations of the cheap tier) in both orders, and the delay of
the alarm on a real shift (90 % → 50 % from task 1,500 on): the results finished when it was
raised, less 1,500 (median and 90th percentile; "-" when it never alarmed).

    .venv/bin/python benchmarks/drift_false_alarms.py [--runs 200] [--tasks 3000]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
from dataclasses import dataclass

from cascade.audit.drift import DriftPlan, DriftWatch, InArrivalOrder

SETTINGS = {
    "defaults": DriftPlan(),
    "README block (same values)": DriftPlan(window=100, baseline=200, false_alarm=0.001),
    "tests' (50/150, every 5)": DriftPlan(window=50, baseline=150, check_every=5),
    "defaults, calibrated 0.9": DriftPlan(acceptance=(0.9,)),
    "defaults, false_alarm 0.05": DriftPlan(false_alarm=0.05),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one simulated run, fed in arrival order and in completion order."""

    alarm_at: int | None
    """Results finished when the first alarm was raised (arrival order); ``None``: never."""
    completion_alarm_at: int | None
    baseline: float
    completion_baseline: float


def finishing(tasks: int, accepted: list[bool], rng: random.Random, workers: int) -> list[int]:
    """The tasks in the order they finish, leased in order to ``workers`` free workers."""
    free = [0.0] * workers
    done: list[tuple[float, int]] = []
    for task in range(tasks):
        start = heapq.heappop(free)
        took = rng.expovariate(1.0) + (0 if accepted[task] else rng.expovariate(1 / 3))
        heapq.heappush(free, start + took)
        done.append((start + took, task))
    return [task for _, task in sorted(done)]


def simulate(plan: DriftPlan, seed: int, tasks: int, shift: int | None) -> Outcome:
    """One run: 90 % accepted by the cheap tier (50 % from task ``shift`` on)."""
    rng = random.Random(seed)  # a simulation's dice
    accepted = [rng.random() < (0.5 if shift is not None and t >= shift else 0.9)
                for t in range(tasks)]  # fmt: skip
    by_arrival, by_completion = DriftWatch({"x": plan}), DriftWatch({"x": plan})
    order: InArrivalOrder[int] = InArrivalOrder()
    unfinished = set(range(tasks))
    first_unfinished = 0
    alarm_at = completion_alarm_at = None
    fed: list[bool] = []
    completion_fed: list[bool] = []
    for count, task in enumerate(finishing(tasks, accepted, rng, workers=16), start=1):
        unfinished.discard(task)
        while first_unfinished in range(tasks) and first_unfinished not in unfinished:
            first_unfinished += 1
        completion_fed.append(accepted[task])
        if _feed(by_completion, accepted[task]) and completion_alarm_at is None:
            completion_alarm_at = count
        order.hold(task, task)
        for settled in order.settled(first_unfinished if unfinished else None):
            fed.append(accepted[settled])
            if _feed(by_arrival, accepted[settled]) and alarm_at is None:
                alarm_at = count
    base = plan.baseline
    return Outcome(alarm_at, completion_alarm_at, sum(fed[:base]) / base,
                   sum(completion_fed[:base]) / base)  # fmt: skip


def _feed(watch: DriftWatch, accepted: bool) -> bool:
    """One result into a watch; whether it raised an alarm."""
    if accepted:
        return bool(watch.result("x", "accepted", 0, 1))
    return bool(watch.result("x", "accepted", 1, 2))


def upper95(hits: int, n: int) -> float:
    """The one-sided 95 % upper bound of a rate (Clopper-Pearson, by bisection)."""
    low, high = hits / n, 1.0
    for _ in range(50):
        mid = (low + high) / 2
        tail = sum(math.comb(n, k) * mid**k * (1 - mid) ** (n - k) for k in range(hits + 1))
        low, high = (mid, high) if tail > 0.05 else (low, mid)
    return high


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args()
    shift = args.tasks // 2
    print(f"{args.runs} stable runs of {args.tasks} tasks per setting; a shift 90 % -> 50 % at "
          f"task {shift} for the delay")  # fmt: skip
    print(f"{'setting':28} {'stated':>7} {'runs alarmed':>18} {'(completion order)':>18} "
          f"{'baseline':>9} {'(compl.)':>9} {'delay p50/p90':>14} {'(compl.)':>10}")  # fmt: skip
    for name, plan in SETTINGS.items():
        stable = [simulate(plan, seed, args.tasks, None) for seed in range(args.runs)]
        shifted = [simulate(plan, 10_000 + seed, args.tasks, shift) for seed in range(args.runs)]
        alarmed = sum(o.alarm_at is not None for o in stable)
        old = sum(o.completion_alarm_at is not None for o in stable)
        bound = upper95(alarmed, args.runs)
        print(f"{name:28} {plan.false_alarm:>7.3f} "
              f"{alarmed:>4}/{args.runs} ({alarmed / args.runs:.3f}, ≤{bound:.3f})"
              f" {old:>9}/{args.runs} ({old / args.runs:.2f})"
              f" {statistics.mean(o.baseline for o in stable):>9.3f}"
              f" {statistics.mean(o.completion_baseline for o in stable):>9.3f}"
              f" {_delays([o.alarm_at for o in shifted], shift):>14}"
              f" {_delays([o.completion_alarm_at for o in shifted], shift):>10}")  # fmt: skip


def _delays(alarms: list[int | None], shift: int) -> str:
    """Median and 90th percentile of the results between the shift and the alarm."""
    delays = sorted(a - shift if a is not None else math.inf for a in alarms)
    p50, p90 = delays[len(delays) // 2], delays[int(len(delays) * 0.9)]
    return "/".join("-" if math.isinf(d) else str(int(d)) for d in (p50, p90))


if __name__ == "__main__":
    main()

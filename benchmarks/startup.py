"""Start-up: wall time of ``python -c "import cascade"`` and ``cascade --help``.

Side by side with a bare ``python -c pass`` (the baseline) and with ``import litellm`` (what a
lazy import saves). Target: at most 0.5 s each, which means neither may import litellm. A last
row is ``import cascade`` alone, as ``python -X importtime`` counts it (the interpreter's own
start-up left out; the fastest run, the least disturbed by the machine's other work), and
the modules it spends the most in: target at most 0.15 s.

    .venv/bin/python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = str(Path(sys.executable).with_name("cascade"))


def wall(command: list[str], runs: int) -> float:
    """Median wall seconds of ``command`` over ``runs`` runs."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print each command's median wall time and its ratio to a bare interpreter."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    baseline = wall([sys.executable, "-c", "pass"], runs)
    print(f"median of {runs} runs; baseline python -c pass: {baseline:.3f} s")
    for label, command, count in (
        ("import cascade", [sys.executable, "-c", "import cascade"], runs),
        ("cascade --help", [CLI, "--help"], runs),
        ("import litellm (what laziness saves)", [sys.executable, "-c", "import litellm"], 2),
    ):
        seconds = wall(command, count)
        print(f"  {label:38} {seconds:6.3f} s  ({seconds / baseline:5.1f}x baseline)")
    fastest, slowest = importtime(runs)
    print(f"  {'import cascade alone (-X importtime)':38} {fastest:6.3f} s  (target <= 0.150 s)")
    for name, own in slowest:
        print(f"      {name:34} {own * 1000:6.1f} ms of its own")


def importtime(runs: int) -> tuple[float, list[tuple[str, float]]]:
    """The fastest ``import cascade`` of ``runs`` by ``-X importtime``; its 5 costliest modules."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    best: tuple[float, list[tuple[str, float]]] = (float("inf"), [])
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import cascade"],
                              check=True, capture_output=True, text=True, env=env)  # fmt: skip
        rows = [line.split("|") for line in done.stderr.splitlines()[1:]]
        total = int(rows[-1][1]) / 1e6
        if total < best[0]:
            own = sorted(((r[2].strip(), int(r[0].split(":")[1]) / 1e6) for r in rows),
                         key=lambda pair: -pair[1])  # fmt: skip
            best = (total, own[:5])
    return best


if __name__ == "__main__":
    main()

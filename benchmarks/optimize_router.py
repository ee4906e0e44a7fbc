"""``cascade optimize`` with and without ``--router`` on every dev suite, held out.

For each suite: the same command (``--target-pass-rate auto``, 30 % of each kind held out,
seed 0) once as it is and once with ``--router``, side by side: the target the selection part
set, the certified bound, the held-out pass rate (95 % interval) and cost per task, how many
of the chosen ladders are routed, and the search's time. Nothing is chosen on the held-out
tasks; they are only scored. Requires ``../shared``.

    .venv/bin/python benchmarks/optimize_router.py [--seed 0] [--target auto]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade.cli import main as cascade  # after the offline switch above

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SUITES = ("bfcl-simple", "rlc-train", "humaneval-results")


def optimize(suite: str, *args: str) -> dict[str, Any]:
    """``cascade optimize SUITE ... --json`` in a scratch folder; what it printed."""
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(out):
        code = cascade(["optimize", str(DATA / suite), "--out", str(Path(tmp) / "out"),
                        *args, "--json"])  # fmt: skip
    found: dict[str, Any] = json.loads(out.getvalue())
    if code not in (0, 2):
        raise SystemExit(f"cascade optimize {suite} exited {code}")
    return found


def row(found: dict[str, Any]) -> str:
    """One side's figures."""
    chosen = found["guarantee"].get("chosen")
    if chosen is None:
        return f"{'nothing certified':>44}"
    held = found["held_out"]
    low, high = held["pass_rate_ci95"]
    routed = sum("routed" in text for text in found["ladders"].values())
    return (f"{chosen['chosen_lower_bound']:6.1%} {held['pass_rate']:6.1%} ({low:.0%}-{high:.0%})"
            f" {held['cost_per_task_usd']:10.6f} {routed}/{len(found['ladders'])}"
            f" {found['search_s']:5.1f}s")  # fmt: skip


def main() -> None:
    """Optimize every suite both ways; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", default="auto")
    args = parser.parse_args()
    common = ["--target-pass-rate", args.target, "--seed", str(args.seed)]
    print(f"{'suite':18} {'':7} {'target':>6} {'bound':>6} {'held out (95%)':>16} "
          f"{'$/task':>10} routed search")  # fmt: skip
    for suite in SUITES:
        for label, extra in (("plain", []), ("router", ["--router"])):
            found = optimize(suite, *common, *extra)
            print(f"{suite:18} {label:7} {found['target_pass_rate']:6.1%} {row(found)}")


if __name__ == "__main__":
    main()

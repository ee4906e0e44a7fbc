"""The start-tier router on every dev suite, held out: pass rate and cost with and without it.

For each suite and policy: ``cascade route fit`` on the training split (the router, and its
threshold chosen on the training tasks from out-of-fold chances), then ``cascade bench
--split held-out`` of the policy as it is and of the same policy with its ``[route]``, side by
side. The held-out tasks never touch the router or its threshold. Requires ``../shared``.

    .venv/bin/python benchmarks/route_held_out.py [--holdout 0.3] [--seed 0]
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
SUITES = [
    ("bfcl-simple", "policies/function_call.toml"),
    ("rlc-train", "policies/ladders/rlc/math.toml"),
    ("rlc-train", "policies/ladders/rlc/multiple_choice.toml"),
    ("rlc-train", "policies/ladders/rlc/open_qa.toml"),
    ("humaneval-results", "policies/ladders/optimized/humaneval-results.toml"),
]


def quietly(*argv: str) -> str:
    """Run a cascade command; what it printed (it must succeed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cascade(list(argv))
    if code != 0:
        raise SystemExit(f"cascade {' '.join(argv)} exited {code}")
    return out.getvalue()


def held_out(suite: str, policy: Path, split: list[str]) -> dict[str, Any]:
    """The policy's bench row on the held-out tasks of its own kind."""
    found = json.loads(quietly("bench", str(DATA / suite), "--json", "--policy", str(policy),
                               "--split", "held-out", *split))  # fmt: skip
    rows = found["ladders"]
    return next(iter(rows.values()))


def main() -> None:
    """Fit, route and bench every suite; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    split = ["--holdout", f"{args.holdout:g}", "--seed", str(args.seed)]
    print(f"{'suite':18} {'policy':26} {'thr':>5} {'pass w/o':>16} {'pass with':>16} "
          f"{'$/task w/o':>11} {'$/task with':>11}")  # fmt: skip
    for suite, name in SUITES:
        source = ROOT / name
        with tempfile.TemporaryDirectory() as tmp:
            router = Path(tmp) / "router.json"
            said = quietly("route", "fit", str(DATA / suite), "--policy", str(source),
                           "--out", str(router), *split)  # fmt: skip
            threshold = float(said.split("threshold = ")[1].split()[0])
            kind = source.read_text().split('task_type = "')[1].split('"')[0]
            routed = Path(tmp) / source.name
            route = f'\n[route]\nfile = "{router}"\nthreshold = {threshold}\n'
            routed.write_text(source.read_text() + route)
            plain = held_out(suite, source, [*split, "--kind", kind])
            with_router = held_out(suite, routed, [*split, "--kind", kind])
        print(f"{suite:18} {source.stem:26} {threshold:5.2f} {_rate(plain):>16} "
              f"{_rate(with_router):>16} {plain['cost_per_task_usd']:11.6f} "
              f"{with_router['cost_per_task_usd']:11.6f}")  # fmt: skip


def _rate(row: dict[str, Any]) -> str:
    low, high = row["pass_rate_ci95"]
    return f"{row['pass_rate']:.1%} ({low:.0%}-{high:.0%})"


if __name__ == "__main__":
    main()

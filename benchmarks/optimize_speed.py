"""How long ``cascade optimize`` takes on suites of the sizes the team asked about.

Usage: python benchmarks/optimize_speed.py [--code-tasks 400] [--skip-code]

Two suites are made from the recorded ones in a temporary folder (never in the repository):

- ``rlc-train`` three times over: 4,455 tasks answered by its 9 models (budget: 30 s);
- ``humaneval-results`` widened to 400 tasks and 11 models: the two priced models and eight
  copies of them, each copy's answers marked so that no two models share a verdict (budget:
  10 minutes cold on 2 cores, 30 s warm, when the sandbox verdicts are kept).

Each is optimized with ``--target-pass-rate auto`` and timed; the code suite runs twice, first
with an empty verdict cache, then warm. Each time is printed beside its budget, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:  # not splitlines(): texts hold U+2028
        return [json.loads(line) for line in lines if line.strip()]


def _write(folder: Path, tasks: list[dict[str, Any]], responses: list[dict[str, Any]],
           models: list[dict[str, Any]]) -> Path:  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    (folder / "models.json").write_text(json.dumps(models))
    return folder


def rlc_times_three(root: Path) -> Path:
    """rlc-train with every task three times, under new ids."""
    source = SHARED / "rlc-train"
    tasks, responses = _rows(source / "tasks.jsonl"), _rows(source / "responses.jsonl")
    new_tasks = [t | {"id": f"{t['id']}#{copy}"} for copy in range(3) for t in tasks]
    new_rows = [r | {"task_id": f"{r['task_id']}#{copy}"} for copy in range(3) for r in responses]
    models = json.loads((source / "models.json").read_text())
    return _write(root / "rlc-x3", new_tasks, new_rows, models)


def humaneval_wide(root: Path, count: int) -> Path:
    """humaneval-results at ``count`` tasks and eleven models (nine of them marked copies)."""
    source = SHARED / "humaneval-results"
    tasks, responses = _rows(source / "tasks.jsonl"), _rows(source / "responses.jsonl")
    priced = [r for r in responses if r["cost_usd"] is not None]
    new_tasks = [tasks[i % len(tasks)] | {"id": f"{tasks[i % len(tasks)]['id']}#{i}"}
                 for i in range(count)]  # fmt: skip
    rows: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    for copy in range(11):
        base = "gpt-3.5-turbo" if copy % 2 == 0 else "gpt-4"
        name = f"{base}-v{copy}"
        factor = 1.0 + copy / 10
        models.append({"name": name, "input_usd_per_mtok": None, "output_usd_per_mtok": None})
        for number, task in enumerate(new_tasks):
            original = str(task["id"]).split("#")[0]
            row = next(r for r in priced if r["task_id"] == original and r["model"] == base)
            mark = f"\n# {name}\n"
            alts = [a | {"output": str(a["output"]) + mark,
                         "cost_usd": float(a["cost_usd"] or 0) * factor}
                    for a in row["alt_outputs"]]  # fmt: skip
            rows.append(row | {"task_id": task["id"], "model": name,
                               "output": str(row["output"]) + mark, "alt_outputs": alts,
                               "cost_usd": float(row["cost_usd"]) * factor})  # fmt: skip
            del number
    return _write(root / "humaneval-wide", new_tasks, rows, models)


def timed(args: list[str], env: dict[str, str]) -> float:
    """Seconds one ``cascade optimize`` run takes, as a separate process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cascade.cli", *args], check=False, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    """Make the suites, time the runs, print each beside its budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code-tasks", type=int, default=400)
    parser.add_argument("--skip-code", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cascade-speed-") as folder:
        root = Path(folder)
        env = os.environ | {"CASCADE_CACHE": str(root / "cache"),
                            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # fmt: skip
        rlc = rlc_times_three(root)
        seconds = timed(["optimize", str(rlc), "--target-pass-rate", "auto", "--out",
                         str(root / "rlc-out")], env)  # fmt: skip
        print(f"rlc-train x3 (4,455 tasks, 9 models): {seconds:6.1f} s; budget 30 s, "
              f"ratio {seconds / 30:.2f}")  # fmt: skip
        if args.skip_code:
            return
        code = humaneval_wide(root, args.code_tasks)
        out = ["optimize", str(code), "--target-pass-rate", "auto", "--out", str(root / "c.toml")]
        cold = timed(out, env)
        warm = timed(out, env)
        print(f"humaneval wide ({args.code_tasks} tasks, 11 models), cold: {cold:6.1f} s; "
              f"budget 600 s, ratio {cold / 600:.2f}")  # fmt: skip
        print(f"humaneval wide ({args.code_tasks} tasks, 11 models), warm: {warm:6.1f} s; "
              f"budget 30 s, ratio {warm / 30:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Run a benchmark script on this tree and on an earlier commit, alternating, in one run.

Usage: python benchmarks/side_by_side.py REV SCRIPT [ARGS...] [--rounds 3]

The earlier commit is checked out into a temporary git worktree, and each round runs that
tree's own copy of ``benchmarks/SCRIPT`` with that tree first on ``PYTHONPATH``, then this
tree's, so that both see the same machine load. Their outputs are printed one under the other.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, script: str, args: list[str]) -> str:
    """One run of ``tree``'s benchmark script against ``tree``'s code; its output."""
    env = os.environ | {"PYTHONPATH": str(tree), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / script), *args],
        capture_output=True, text=True, env=env, cwd=tree, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def main() -> None:
    """Check out the commit, run both trees round after round, print both outputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("script")
    parser.add_argument("--rounds", type=int, default=3)
    known, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="cascade-base-") as folder:
        base = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base),
                        known.rev], check=True, capture_output=True)  # fmt: skip
        try:
            for number in range(known.rounds):
                for label, tree in ((f"before ({known.rev})", base), ("after (this tree)", ROOT)):
                    print(f"== round {number + 1}, {label}")
                    print(run(tree, known.script, rest).rstrip())
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False, capture_output=True)  # fmt: skip


if __name__ == "__main__":
    main()

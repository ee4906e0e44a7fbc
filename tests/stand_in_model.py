"""A stand-in for the local model's process (``cascade.backends.llama_child``), for crash tests.

It speaks the same protocol and answers every request with ``"ok"``, unless told to misbehave:

- ``--die SIGNAL`` kills itself with SIGNAL (``SIGILL``, ``SIGSEGV``, ``SIGKILL``) when asked;
- ``--die-once FILE``: the first process to see FILE missing creates it and dies with SIGILL,
  the ones after it answer;
- ``--die-after FILE K``: once K answers are counted in FILE (by every process), it dies with
  SIGILL when asked;
- ``--die-loading SIGNAL`` kills itself before it says it is ready;
- ``--hang`` never answers;
- ``--starts FILE`` adds a byte to FILE each time a process starts.

The backend's own flags (``--model``, ``--n-ctx`` ...) are accepted and ignored.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


def _kill(name: str) -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.Signals[name])
    time.sleep(5)  # a signal that does not kill at once still must not let the process answer


def _say(reply: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def _count_or_die(path: str, answers: int) -> None:
    """Count one more answer in ``path``, or die once ``answers`` were given."""
    given = os.path.getsize(path) if os.path.exists(path) else 0
    if given >= answers:
        _kill("SIGILL")
    with open(path, "a") as marks:  # one byte per answer
        marks.write(".")


def main() -> None:
    """Serve requests on stdin, misbehaving as the flags say."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--die")
    parser.add_argument("--die-once")
    parser.add_argument("--die-after", nargs=2)
    parser.add_argument("--die-loading")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--starts")
    args, _backend_flags = parser.parse_known_args()
    if args.starts:
        with open(args.starts, "a") as starts:  # one byte per start
            starts.write(".")
    if args.die_loading:
        _kill(args.die_loading)
    _say({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        if args.die:
            _kill(args.die)
        if args.die_once and not os.path.exists(args.die_once):
            open(args.die_once, "w").close()  # a marker, nothing more
            _kill("SIGILL")
        if args.die_after:
            _count_or_die(args.die_after[0], int(args.die_after[1]))
        if args.hang:
            time.sleep(3600)
        text = "ok" if request["messages"] else "no messages"
        raw = {
            "choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
        _say({"raw": raw, "compute_s": 0.001})


if __name__ == "__main__":
    main()

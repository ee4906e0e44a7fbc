"""``cascade drift``: the drift alarms of a store, and clearing them."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.cli.say import say
from cascade.errors import ConfigError
from cascade.store import Store
from cascade.store.alarms import DriftAlarms

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """List the store's alarms, or clear them (of one task type, or all)."""
    if not Path(args.store).is_file():
        raise ConfigError(f"store {args.store} not found")
    with Store(args.store) as store:
        alarms = DriftAlarms(store)
        if args.action == "clear":
            cleared = alarms.clear(args.type)
            which = f"task type {args.type}" if args.type else "every task type"
            say(f"cleared {cleared} drift alarm{'s' * (cleared != 1)} of {which}: its tasks "
                "start where their policy says again")  # fmt: skip
            return 0
        for alarm in alarms.of_run(None):
            state = "cleared" if alarm["cleared_at"] is not None else "active"
            say(f"{alarm['run_id']}  {state:7}  {alarm['text']}")
    return 0

"""A run's start-up heap, kept out of the garbage collector's full passes.

A run's process holds a large heap that lives as long as it does: litellm's modules and its price
map, the HTTP clients made by the first calls, the policies. CPython's cyclic collector walks
all of it on every full pass, which a run of thousands of calls triggers again and again: about
a quarter of a millisecond per call on litellm's heap, more than the rest of the run layer
together (``benchmarks/run_overhead.py``). Once start-up is over, :func:`settle` collects once
and moves what is left to the collector's permanent generation (:func:`gc.freeze`), as the
Python documentation suggests for long-lived processes. Objects created later are collected as
before; frozen ones are still freed when nothing refers to them.

It is for processes the run owns (``cascade run``'s, and its workers'), not for a library
caller's: a program that runs a :class:`cascade.Cascade` itself keeps its own collector settings.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Collect the start-up garbage, then freeze what survived.

    Once per process is enough: objects frozen stay frozen. (Counting them, with
    :func:`gc.get_freeze_count`, walks all of them: not for a hot path.)
    """
    gc.collect()
    gc.freeze()

"""The backend a cascade uses when none is given: local models on llama.cpp, the rest on litellm.

A tier that says ``backend = "http"`` has its models called over the lean HTTP path
(:mod:`cascade.backends.http`) instead. Each backend is imported only when first needed, so
``import cascade`` stays fast.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from cascade.backends.base import Backend
from cascade.errors import ConfigError
from cascade.types import Tier

__all__ = ["default_backend", "http_models"]


def default_backend(http: Collection[str] = ()) -> Backend:
    """``http`` models over HTTP, ``local/...`` models on llama.cpp, the rest through litellm."""
    from cascade.backends.http import HttpBackend  # noqa: PLC0415  # aiohttp stays lazy
    from cascade.backends.litellm import LiteLLMBackend  # noqa: PLC0415  # litellm stays lazy
    from cascade.backends.local import LOCAL_PREFIX, LocalBackend  # noqa: PLC0415
    from cascade.backends.routed import PrefixBackend  # noqa: PLC0415

    models = dict.fromkeys(http, HttpBackend)
    return PrefixBackend({LOCAL_PREFIX: LocalBackend}, default=LiteLLMBackend, models=models)


def http_models(tiers: Iterable[Tier]) -> frozenset[str]:
    """The models of tiers with ``backend = "http"``: one backend per model in a run.

    A model on ``http`` in one tier and on litellm in another is refused: its price, rate
    limits and breaker are one model's, and so is its route.

    >>> sorted(http_models([Tier("openai/a", backend="http", fallbacks=("openai/b",)), Tier("c")]))
    ['openai/a', 'openai/b']
    >>> http_models([Tier("openai/a", backend="http"), Tier("openai/a")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    cascade.errors.ConfigError: openai/a is on backend = 'http' in one tier and on litellm ...
    """
    from cascade.backends.http_wire import model_problem  # noqa: PLC0415

    by_model: dict[str, str] = {}
    for tier in tiers:
        if tier.is_human:
            continue
        backend = tier.backend or "litellm"
        for model in tier.models:
            if backend == "http" and (problem := model_problem(model)) is not None:
                raise ConfigError(f"tier {tier.model}: {problem}")
            if by_model.setdefault(model, backend) != backend:
                raise ConfigError(f"{model} is on backend = 'http' in one tier and on litellm "
                                  "in another: one backend per model")  # fmt: skip
    return frozenset(model for model, backend in by_model.items() if backend == "http")

"""The start-tier router: per tier, the chance its answer passes its gates, from cheap features.

A :class:`Router` holds one logistic regression per tier of a policy's ladder (on the features
of :mod:`cascade.route.features`), fit by ``cascade route fit`` and saved as JSON. A policy's
``[route]`` names the file and a threshold: each task starts at the first tier whose predicted
chance reaches it (never past its last tier). A file that is not a router of this version, or
was fit for another ladder, is refused naming it: a run never goes on without its router.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.errors import ConfigError
from cascade.route.features import N_FEATURES, features
from cascade.types import Message, Task

Route = Callable[[Task, tuple[Message, ...]], Sequence[int]]

__all__ = ["FORMAT", "Router", "fit_matrix", "fit_router", "learned_route", "start_at"]

FORMAT = "cascade-router/1"


@dataclass(frozen=True)
class Router:
    """A router for one ladder: its tiers' models, weights and intercepts."""

    models: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]
    intercepts: tuple[float, ...]

    def chances(self, rows: Sequence[tuple[Task, tuple[Message, ...]]]) -> list[list[float]]:
        """Each row's chance of passing at each tier."""
        return self.chances_of(features(rows))

    def chances_of(self, matrix: Any) -> list[list[float]]:
        """The chances of the rows whose :func:`features` are ``matrix``."""
        import numpy as np  # noqa: PLC0415

        weights = np.asarray(self.weights, dtype=np.float64).T
        logits = matrix @ weights + np.asarray(self.intercepts)
        return [[1 / (1 + math.exp(-float(x))) for x in row] for row in np.asarray(logits)]

    def to_json(self) -> dict[str, Any]:
        """The router as its file holds it."""
        return {"format": FORMAT, "features": N_FEATURES + 3, "models": list(self.models),
                "weights": [list(w) for w in self.weights],
                "intercepts": list(self.intercepts)}  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write the router's file."""
        Path(path).write_text(json.dumps(self.to_json()) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Router:
        """Read a router's file; a clear :class:`ConfigError` naming it when it is not one."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"router {path}: cannot be read as JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"router {path}: not a {FORMAT} file (format {found!r})")
        try:
            models = tuple(str(m) for m in data["models"])
            weights = tuple(tuple(float(x) for x in w) for w in data["weights"])
            intercepts = tuple(float(x) for x in data["intercepts"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"router {path}: a field is missing or malformed ({exc})") from exc
        width = N_FEATURES + 3
        if data.get("features") != width or any(len(w) != width for w in weights):
            raise ConfigError(f"router {path}: its weights are not {width} features wide")
        if not len(models) == len(weights) == len(intercepts) or not models:
            raise ConfigError(f"router {path}: models, weights and intercepts do not match")
        if not all(math.isfinite(x) for w in weights for x in w) or not all(
            math.isfinite(x) for x in intercepts
        ):
            raise ConfigError(f"router {path}: a weight is not a finite number")
        return cls(models, weights, intercepts)


def fit_router(
    models: Sequence[str],
    rows: Sequence[tuple[Task, tuple[Message, ...]]],
    passed: Sequence[Sequence[bool]],
) -> Router:
    """Fit each tier's chance of passing; ``passed[k][i]``: whether tier k passed row i.

    A tier whose answers all passed (or all failed) gets a constant chance.
    """
    return fit_matrix(models, features(rows), passed)


def fit_matrix(models: Sequence[str], matrix: Any, passed: Sequence[Sequence[bool]]) -> Router:
    """:func:`fit_router` on rows whose :func:`features` are ``matrix``."""
    import numpy as np  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    width = matrix.shape[1]
    weights, intercepts = [], []
    for labels in passed:
        y = np.asarray(labels, dtype=np.int8)
        if y.size == 0 or y.min() == y.max():  # nothing to learn: a constant chance
            share = min(max(float(y.mean()) if y.size else 1.0, 0.001), 0.999)
            weights.append((0.0,) * width)
            intercepts.append(math.log(share / (1 - share)))
            continue
        model = LogisticRegression(C=1.0, max_iter=2000).fit(matrix, y)
        weights.append(tuple(float(x) for x in model.coef_[0]))
        intercepts.append(float(model.intercept_[0]))
    return Router(tuple(models), tuple(weights), tuple(intercepts))


def start_at(
    base: Route | None,
    tiers: int,
    chances: Callable[[Task, tuple[Message, ...]], Sequence[float]],
    threshold: float,
) -> Route:
    """``base``'s tiers for a task, less the first ones whose chance is under ``threshold``."""

    def route(task: Task, messages: tuple[Message, ...]) -> list[int]:
        order = list(base(task, messages)) if base is not None else list(range(tiers))
        found = chances(task, messages)
        while len(order) > 1 and found[order[0]] < threshold:
            order.pop(0)
        return order

    return route


def learned_route(file: str | Path, threshold: float, models: Sequence[str],
                  base: Route | None) -> Route:  # fmt: skip
    """A policy's ``[route]``: ``base`` (its start rules) less the tiers the router skips.

    The router must have been fit for this ladder (the same models, in order; a provider prefix
    such as ``openai/`` may be added or dropped): its file is refused, named, otherwise.
    """
    router = Router.load(file)
    if [_bare(m) for m in router.models] != [_bare(m) for m in models]:
        raise ConfigError(f"router {file} was fit for the ladder {' → '.join(router.models)}, "
                          f"not this policy's {' → '.join(models)}")  # fmt: skip
    return start_at(base, len(models), lambda t, m: router.chances([(t, m)])[0], threshold)


def _bare(model: str) -> str:
    """A model's name without its provider prefix: ``openai/gpt-4o`` is ``gpt-4o``."""
    return model.rsplit("/", 1)[-1]

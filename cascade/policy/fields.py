"""What building the engine's parts from a policy shares: the error naming a field, and more.

The files, imports and prices a policy names are read here, each failure a :class:`FieldError`
on the field that named it, so that the loader can say file, line and field.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascade.errors import ConfigError
from cascade.types import Price

if TYPE_CHECKING:
    from cascade.policy.spec_base import PriceSpec
    from cascade.store.verdicts import VerdictCache

__all__ = ["Context", "FieldError", "imported", "price_of", "relative"]


class FieldError(ConfigError):
    """A configuration error in one field of a policy entry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Context:
    """Where a policy's entries are built: the policy's folder, and a verdict cache if any."""

    base: Path
    """What a file a policy names (a schema, tests) is relative to."""
    cache: VerdictCache | None = None
    """Keeps the verdicts of sandboxed tests (``cascade bench`` and ``optimize`` pass one)."""


def price_of(spec: PriceSpec | None) -> Price | None:
    """The price a ``price = {...}`` table gives, if any."""
    return None if spec is None else Price(spec.input_usd_per_mtok, spec.output_usd_per_mtok)


def relative(base: Path, name: str, field: str) -> Path:
    """The file ``name`` relative to ``base``; a :class:`FieldError` on ``field`` if missing."""
    path = (base / name).resolve()
    if not path.is_file():
        raise FieldError(field, f"file {name} not found (looked for {path})")
    return path


def imported(target: str, field: str) -> Any:
    """What ``module:attribute`` names; a :class:`FieldError` on ``field`` if it cannot be."""
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise FieldError(field, f"cannot import {target}: {exc}") from exc
    return found

"""``otlp``: OpenTelemetry GenAI spans as OTLP JSON (filled in next)."""

from __future__ import annotations

from pathlib import Path

from cascade.traffic.collect import Collector

__all__ = ["read_otlp"]


def read_otlp(paths: list[Path], into: Collector) -> None:
    """Read OTLP JSON files into ``into``."""
    del paths, into

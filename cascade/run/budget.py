"""Moved to :mod:`cascade.budget` (the audits share it, and audit/ must not import run/)."""

from cascade.budget import JobBudget

__all__ = ["JobBudget"]

"""Replay benchmarks: cost against pass rate for single models, the oracle and ladders."""

from cascade.bench.dataset import Dataset, load_dataset
from cascade.bench.evaluate import (
    LadderScore,
    ReplayScore,
    score_ladder,
    score_models,
    score_oracle,
)

__all__ = [
    "Dataset",
    "LadderScore",
    "ReplayScore",
    "load_dataset",
    "score_ladder",
    "score_models",
    "score_oracle",
]

"""What the start-tier router sees of a task: cheap features, the same at fit and at run time.

Its type and tags as tokens, the words of what it sends (hashed word 1- and 2-grams, so no
vocabulary is kept), and three numbers: the prompt's length, and how many functions or choices
the task offers. scikit-learn is imported here, and only when a router is fit or used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cascade.types import Message, Task

__all__ = ["N_FEATURES", "features"]

N_FEATURES = 2**12
"""Hashed word n-gram columns; three numeric columns follow them."""


def _text(task: Task, messages: tuple[Message, ...]) -> str:
    found = task.extra.get("tags", task.meta.get("tags", []))
    tags = [found] if isinstance(found, str) else found if isinstance(found, list) else []
    words = [f"__type_{task.type}", *(f"__tag_{tag}" for tag in tags if isinstance(tag, str))]
    return " ".join([*words, *(str(m.get("content", "")) for m in messages)])


def _numbers(task: Task, messages: tuple[Message, ...]) -> list[float]:
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    functions = task.extra.get("functions")
    choices = task.extra.get("choices")
    return [
        math.log1p(chars) / 10,
        (len(functions) if isinstance(functions, list) else 0) / 10,
        (len(choices) if isinstance(choices, list | dict) else 0) / 10,
    ]


def features(rows: Sequence[tuple[Task, tuple[Message, ...]]]) -> Any:
    """The feature matrix (sparse, one row per task) of ``rows``."""
    from scipy.sparse import csr_matrix, hstack  # noqa: PLC0415  # only routers need them
    from sklearn.feature_extraction.text import HashingVectorizer  # noqa: PLC0415

    hashing = HashingVectorizer(
        n_features=N_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm="l2"
    )
    words = hashing.transform([_text(task, messages) for task, messages in rows])
    numbers = csr_matrix([_numbers(task, messages) for task, messages in rows])
    return hstack([words, numbers], format="csr")

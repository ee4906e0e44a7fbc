"""Write a dataset folder in the shared format: tasks, responses and models.

``cascade export`` (a run store) and ``cascade import`` (logs) both write through
:func:`write_dataset`, so the two make the same files. Each file is written whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cascade.files import write_atomic

__all__ = ["write_dataset"]


def write_dataset(
    folder: Path,
    tasks: Iterable[Mapping[str, Any]],
    responses: Iterable[Mapping[str, Any]],
    models: Iterable[Mapping[str, Any]],
) -> tuple[int, int]:
    """Write the three files of a dataset; returns how many tasks and responses it wrote."""
    task_lines = [json.dumps(task) + "\n" for task in tasks]
    response_lines = [json.dumps(row) + "\n" for row in responses]
    write_atomic(folder / "tasks.jsonl", "".join(task_lines))
    write_atomic(folder / "responses.jsonl", "".join(response_lines))
    write_atomic(folder / "models.json", json.dumps(list(models), indent=2) + "\n")
    return len(task_lines), len(response_lines)

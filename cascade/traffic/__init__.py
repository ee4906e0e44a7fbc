"""Logs of real traffic turned into a dataset: ``cascade import FORMAT FILE... --out DATASET``.

Each format has its own reader module; :func:`import_logs` runs the one asked for over every
file into one :class:`~cascade.traffic.collect.Collector`, which merges identical requests,
prices calls the log did not, keeps secrets out and writes the dataset.

========================  ===============================================================
``openai-chat``           :mod:`cascade.traffic.openai_chat`: request/response pairs, JSONL
``openai-batch``          :mod:`cascade.traffic.openai_batch`: Batch API input, output, errors
``otlp``                  :mod:`cascade.traffic.otlp`: OTLP JSON GenAI spans with contents
``mapped``                :mod:`cascade.traffic.mapped`: any JSONL, through JSON pointers
========================  ===============================================================
"""

from __future__ import annotations

from cascade.traffic.collect import Imported
from cascade.traffic.run import FORMATS, import_logs

__all__ = ["FORMATS", "Imported", "import_logs"]

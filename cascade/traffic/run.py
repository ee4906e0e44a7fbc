"""Run one format's reader over the files given and write the dataset."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from cascade.errors import ConfigError
from cascade.traffic.collect import Collector, Imported

__all__ = ["FORMATS", "import_logs"]

FORMATS = ("openai-chat", "openai-batch", "otlp", "mapped")


def import_logs(
    fmt: str,
    files: Sequence[str | Path],
    out: str | Path,
    *,
    mapping: str | Path | None = None,
) -> Imported:
    """Import ``files`` of format ``fmt`` into the dataset folder ``out``.

    Bad input (an unknown format, a missing file, a bad map file) raises
    :class:`~cascade.errors.ConfigError` naming it; a bad line is quarantined instead.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    paths = [Path(f) for f in files]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    if (mapping is None) != (fmt != "mapped"):
        raise ConfigError("--map MAP.json is needed by the mapped format, and by it alone")
    collector = Collector()
    _reader(fmt, mapping)(paths, collector)
    return collector.write(out)


def _reader(fmt: str, mapping: str | Path | None) -> Callable[[list[Path], Collector], None]:
    # Each format's module is imported only when it is asked for.
    if fmt == "openai-chat":
        from cascade.traffic.openai_chat import read_openai_chat  # noqa: PLC0415

        return read_openai_chat
    if fmt == "openai-batch":
        from cascade.traffic.openai_batch import read_openai_batch  # noqa: PLC0415

        return read_openai_batch
    if fmt == "otlp":
        from cascade.traffic.otlp import read_otlp  # noqa: PLC0415

        return read_otlp
    from cascade.traffic.mapped import load_map, read_mapped  # noqa: PLC0415

    assert mapping is not None  # checked by import_logs
    return functools.partial(read_mapped, load_map(Path(mapping)))

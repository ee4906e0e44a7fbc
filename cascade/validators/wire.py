r"""Plain data across a sandbox's edge: the only values that pass between an answer and its tests.

This module runs in the sandboxes, copied there as ``_cascade_wire.py`` (it imports nothing
of cascade's). The answer's side :func:`encode`\ s what its functions return; the tests' side
:func:`decode`\ s it back into builtin values, and encodes the arguments it sends.

What crosses: ``None``, ``bool``, ``int`` (of any size: big ones travel in hex, so the 4,300
digit limit on ``str`` never applies), ``float``, ``complex``, ``str``, ``bytes``, and ``list``,
``tuple``, ``dict``, ``set``, ``frozenset``, ``OrderedDict`` and ``Counter`` of those, each of
its exact type. A ``defaultdict`` travels as a ``dict``, a namedtuple as a ``tuple``, a numpy
number or array as the builtin values it holds, a ``re.Match`` as a read-only match (true, with
its groups and span), and a generator or any other iterator as an iterator over the items it
yielded (on the answer's side, before the value is sent). Anything else, a subclass of ``str``
or ``int`` included, is refused with a reason, on the answer's side or here.

Bounds (the tests' side refuses a value past them, naming the bound):

- :data:`MAX_LINE_BYTES`: 64 MiB of encoded JSON per value (a list of about 8 million small
  ints);
- :data:`MAX_ITEMS`: 4,000,000 items in one value, all containers together (an iterator yields
  at most this many on the answer's side);
- :data:`MAX_DEPTH`: containers nested 100 deep;
- ``seconds`` (3 s by default): the time to rebuild one value, checked between items, so that a
  set of ints that all share one hash is refused instead of stalling the tests.

Every failure to read a value is :class:`Unplain`, with the reason.

>>> decode(encode({"a": [1, 2 ** 80, (3.5, None)]}))
{'a': [1, 1208925819614629174706176, (3.5, None)]}
>>> decode(["s", 1, ["l"]])
Traceback (most recent call last):
...
cascade.validators.wire.Unplain: a value that cannot be rebuilt (TypeError: unhashable type: 'list')
"""

from __future__ import annotations

import collections
import json
import re
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_LINE_BYTES", "Unplain", "decode", "encode", "loads"]

MAX_LINE_BYTES = 64 << 20
MAX_ITEMS = 4_000_000
MAX_DEPTH = 100
_SMALL = 1 << 53
_CONTAINERS: dict[type, str] = {list: "l", tuple: "t", set: "s", frozenset: "fs"}
_MAPPINGS: dict[type, str] = {
    dict: "d",
    collections.defaultdict: "d",
    collections.OrderedDict: "od",
    collections.Counter: "ctr",
}
_BUILD: dict[str, Any] = {"l": list, "t": tuple, "fs": frozenset, "it": iter}
_MAPPING_TYPES: dict[str, Any] = {
    "d": dict,
    "od": collections.OrderedDict,
    "ctr": collections.Counter,
}


class Unplain(Exception):  # a reason, raised and caught across the edge
    """A value that is not plain data, or past a bound."""


class Match:
    """A ``re.Match`` as the tests' side sees it: true, with its groups and span."""

    def __init__(self, groups: list[Any], spans: list[Any], named: dict[str, Any]) -> None:
        self._groups, self._spans, self._named = groups, spans, named

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<Match span={tuple(self._spans[0])}, match={self._groups[0]!r}>"

    def group(self, *which: int | str) -> Any:
        """As ``re.Match.group``."""
        picked = [self._named[w] if isinstance(w, str) else self._groups[w] for w in which or (0,)]
        return picked[0] if len(picked) == 1 else tuple(picked)

    def __getitem__(self, which: int | str) -> Any:
        return self.group(which)

    def groups(self, default: Any = None) -> tuple[Any, ...]:
        """As ``re.Match.groups``."""
        return tuple(default if g is None else g for g in self._groups[1:])

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        """As ``re.Match.groupdict``."""
        return {k: default if v is None else v for k, v in self._named.items()}

    def span(self, which: int = 0) -> tuple[int, int]:
        """As ``re.Match.span``."""
        start, end = self._spans[which]
        return int(start), int(end)

    def start(self, which: int = 0) -> int:
        """As ``re.Match.start``."""
        return self.span(which)[0]

    def end(self, which: int = 0) -> int:
        """As ``re.Match.end``."""
        return self.span(which)[1]


class _Encoder:
    def __init__(self) -> None:
        self.items = 0

    def count(self, n: int = 1) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise Unplain(f"a value of more than {MAX_ITEMS:,} items")

    def encode(self, value: Any, depth: int = 0) -> Any:  # one case per type
        kind = type(value)
        if value is None or kind in (bool, str):
            return value
        if kind is int:
            return value if -_SMALL < value < _SMALL else ["i", hex(value)]
        if kind is float:
            return value
        if depth >= MAX_DEPTH:
            raise Unplain(f"a value nested more than {MAX_DEPTH} deep")
        if kind is complex:
            return ["c", value.real, value.imag]
        if kind is bytes:
            return ["y", value.hex()]
        if kind in _MAPPINGS:
            self.count(len(value))
            pairs = [(self.encode(k, depth + 1), self.encode(v, depth + 1))
                     for k, v in dict.items(value)]  # fmt: skip
            return [_MAPPINGS[kind], *(x for pair in pairs for x in pair)]
        tag = _CONTAINERS.get(kind)
        if tag is None and issubclass(kind, tuple) and hasattr(kind, "_fields"):
            tag, value = "t", tuple.__iter__(value)  # a namedtuple, as the tuple it is
        if tag is not None:
            return [tag, *self._items(value, depth)]
        return self._other(value, depth)

    def _items(self, values: Any, depth: int) -> Iterator[Any]:
        for item in values:
            self.count()
            yield self.encode(item, depth + 1)

    def _other(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is re.Match:
            spans = [list(value.span(i)) for i in range(len(value.groups()) + 1)]
            groups = [value.group(0), *value.groups()]
            named = value.groupdict()
            return ["m", self.encode(groups, depth + 1), spans, self.encode(named, depth + 1)]
        if kind.__module__ == "numpy" and hasattr(value, "tolist"):
            plain = value.tolist()
            if type(plain).__module__ != "numpy":
                return self.encode(plain, depth)
        if isinstance(value, Iterator):
            return ["it", *self._items(value, depth)]
        raise Unplain(f"an instance of {kind.__module__}.{kind.__qualname__}, not plain data")


def encode(value: Any) -> Any:
    """``value`` as JSON-ready plain data; :class:`Unplain` if it is not plain data."""
    return _Encoder().encode(value)


class _Decoder:
    def __init__(self, seconds: float) -> None:
        self.items = 0
        self.deadline = time.monotonic() + seconds

    def count(self, n: int) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise Unplain(f"a value of more than {MAX_ITEMS:,} items")

    def hashed(self, done: int) -> None:
        """Between items put in a set or dict: where hashing can be made to take seconds."""
        if done % 64 == 0 and time.monotonic() > self.deadline:
            raise Unplain("a value that takes too long to rebuild (keys that share one hash?)")

    def decode(self, data: Any, depth: int = 0) -> Any:  # one case per tag
        kind = type(data)
        if data is None or kind in (bool, str, int, float):
            return data
        if kind is not list or not data or type(data[0]) is not str or depth >= MAX_DEPTH:
            raise Unplain("a malformed value")
        tag, rest = data[0], data[1:]
        if tag in _BUILD or tag == "s" or tag in _MAPPING_TYPES:
            self.count(len(rest))
            if any(type(x) in (list, dict) for x in rest):  # else plain scalars, as they are
                rest = [self.decode(x, depth + 1) for x in rest]
            if tag in _BUILD:
                return _BUILD[tag](rest)
            return self._set(rest) if tag == "s" else self._mapping(tag, rest)
        return self._scalar(tag, rest, depth)

    def _set(self, items: list[Any]) -> set[Any]:
        built: set[Any] = set()
        for done, item in enumerate(items):
            self.hashed(done)
            built.add(item)
        return built

    def _mapping(self, tag: str, items: list[Any]) -> Any:
        if len(items) % 2:
            raise Unplain("a malformed mapping")
        built = _MAPPING_TYPES[tag]()
        for done, (key, value) in enumerate(zip(items[::2], items[1::2], strict=True)):
            self.hashed(done)
            built[key] = value
        return built

    def _scalar(self, tag: str, rest: list[Any], depth: int) -> Any:
        if tag == "i" and len(rest) == 1 and type(rest[0]) is str:
            return int(rest[0], 16)
        if tag == "c" and len(rest) == 2 and all(type(x) in (int, float) for x in rest):
            return complex(rest[0], rest[1])
        if tag == "y" and len(rest) == 1 and type(rest[0]) is str:
            return bytes.fromhex(rest[0])
        if tag == "m" and len(rest) == 3:
            groups, spans, named = self.decode(rest[0], depth + 1), rest[1], rest[2]
            if type(groups) is list and type(spans) is list and len(spans) == len(groups):
                return Match(groups, spans, self.decode(named, depth + 1))
        raise Unplain("a malformed value")


def decode(data: Any, seconds: float = 3.0) -> Any:
    """Plain data back as builtin values, within the bounds; :class:`Unplain` if it cannot be."""
    try:
        return _Decoder(seconds).decode(data)
    except Unplain:
        raise
    except Exception as exc:  # noqa: BLE001  # any failure to rebuild is the value's fault
        raise Unplain(f"a value that cannot be rebuilt ({type(exc).__name__}: {exc})") from None


def loads(line: bytes | str) -> Any:
    """One JSON line, within :data:`MAX_LINE_BYTES`; :class:`Unplain` if it cannot be read."""
    if len(line) > MAX_LINE_BYTES:
        raise Unplain(f"a value over {MAX_LINE_BYTES >> 20} MiB")
    try:
        return json.loads(line)
    except Exception as exc:  # noqa: BLE001  # deep nesting, a huge number, bad bytes: all refused
        raise Unplain(f"a line that is not JSON ({type(exc).__name__})") from None

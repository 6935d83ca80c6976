"""A process's memory of values worked out from database rows, each kept with the stamp of the rows it came from
(PostgreSQL's row versions, say) for a bounded time: a value is reused only while the stamp read now is the same
and it is fresh. Bounded in size: the least recently used goes first. For one event loop (no lock)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class StampedMemo(Generic[K, V]):
    def __init__(self, size: int, seconds: float) -> None:
        self.size = size
        self.seconds = seconds
        self._values: OrderedDict[K, tuple[Hashable, float, V]] = OrderedDict()

    def get(self, key: K, stamp: Hashable) -> V | None:
        """The value kept for `key`, if it was kept under `stamp` and is still fresh."""
        kept = self._values.get(key)
        if kept is None:
            return None
        kept_stamp, until, value = kept
        if kept_stamp != stamp or time.monotonic() >= until:
            del self._values[key]
            return None
        self._values.move_to_end(key)
        return value

    def latest(self, key: K) -> tuple[Hashable, V] | None:
        """The value kept for `key` and the stamp it was kept under, if it is still fresh: for a caller that
        checks the stamp itself later (in the statement that acts on the value, say)."""
        kept = self._values.get(key)
        if kept is None or time.monotonic() >= kept[1]:
            return None
        self._values.move_to_end(key)
        return kept[0], kept[2]

    def put(self, key: K, stamp: Hashable, value: V) -> None:
        self._values[key] = (stamp, time.monotonic() + self.seconds, value)
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)

    def clear(self) -> None:
        """Forget every value: the rows they came from are gone (a database emptied under the process)."""
        self._values.clear()

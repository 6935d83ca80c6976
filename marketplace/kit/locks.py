"""Work of one process keyed by a value (a licence's id, say), done in turns and in batches: callers with the
same key take turns, others do not wait, and a turn does at once everything queued for its key by then. A
key's state lives while someone holds or awaits it, so the map keeps no idle keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from weakref import WeakValueDictionary

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Turns(Generic[T, R]):
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queued: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)


class KeyedBatches(Generic[T, R]):
    def __init__(self) -> None:
        self._keys: WeakValueDictionary[Hashable, _Turns[T, R]] = WeakValueDictionary()

    async def submit(self, key: Hashable, item: T, run: Callable[[list[T]], Awaitable[list[R | Exception]]]) -> R:
        """`item`'s outcome: `run` gets, in one turn of `key`, every item queued for it since the last turn and
        returns their outcomes in order (a result, or the exception to raise to that item's caller). When
        `run` itself fails, every item of its batch fails with it."""
        turns = self._keys.get(key)
        if turns is None:
            turns = _Turns()
            self._keys[key] = turns
        outcome: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        turns.queued.append((item, outcome))
        async with turns.lock:
            if not outcome.done():  # an earlier turn did not take it: this turn takes it and all queued since
                batch, turns.queued = turns.queued, []
                await _run_batch(batch, run)
        return await outcome


async def _run_batch(
    batch: list[tuple[T, asyncio.Future[R]]], run: Callable[[list[T]], Awaitable[list[R | Exception]]]
) -> None:
    try:
        outcomes = await run([item for item, _ in batch])
    except BaseException as exc:
        for _, future in batch:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
        if isinstance(exc, Exception):
            return  # each caller raises it from its own future
        raise
    for (_, future), result in zip(batch, outcomes, strict=True):
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)

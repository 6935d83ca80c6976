"""Keyed batches: one turn at a time per key, each turn doing everything queued by then, each caller getting
its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from marketplace.kit.locks import KeyedBatches


async def test_callers_of_a_key_are_served_in_batches_and_get_their_own_outcomes() -> None:
    batches: KeyedBatches[int, int] = KeyedBatches()
    seen: list[list[int]] = []
    running = 0

    async def double_or_refuse(items: list[int]) -> list[int | Exception]:
        nonlocal running
        running += 1
        assert running == 1  # one turn of the key at a time
        seen.append(items)
        await asyncio.sleep(0.01)  # the others queue meanwhile
        running -= 1
        return [ValueError(item) if item % 5 == 0 else 2 * item for item in items]

    outcomes = await asyncio.gather(
        *(batches.submit("key", n, double_or_refuse) for n in range(1, 11)), return_exceptions=True
    )
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [2, 4, 6, 8, "5", 12, 14, 16, 18, "10"]
    assert sorted(item for batch in seen for item in batch) == list(range(1, 11))
    assert len(seen) < 10  # the first turn took one call, the next all those queued behind it


async def test_a_failed_turn_fails_every_caller_of_its_batch() -> None:
    batches: KeyedBatches[int, int] = KeyedBatches()

    async def fail(items: list[int]) -> list[int | Exception]:
        await asyncio.sleep(0.01)
        raise RuntimeError("the database went away")

    outcomes = await asyncio.gather(*(batches.submit("key", n, fail) for n in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    with pytest.raises(RuntimeError):
        await batches.submit("key", 9, fail)

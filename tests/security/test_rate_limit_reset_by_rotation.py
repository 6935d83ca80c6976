"""Hole 9, rate limit reset by rotation: the data API counted calls per access key only, so after `POST
/licences/{id}/access-keys` the new key had a fresh 120 calls in the same minute. Calls are now counted per
licence as well, in the database, so every worker process sees every call of the licence."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import httpx
import pytest
from litestar import Litestar

from marketplace.app import create_app
from marketplace.config import Settings
from marketplace.kit import clock
from tests.delivery.conftest import DISTRICT_DATASET, FIELDS, Market, open_market
from tests.delivery.test_data_api import access_key, rows
from tests.fixtures.api import Api
from tests.security.test_fuzz import row_counts
from tests.security.test_privacy import usage_calls

LIMIT = 6


@pytest.fixture
async def workers(settings: Settings, app: Litestar) -> AsyncIterator[tuple[Api, Api]]:
    """Two worker processes as deployed, each with its own pool on the run's database, allowing LIMIT calls a
    minute (the suite's own app allows 120). `app` is asked for so that the tables are emptied afterwards."""
    limited = settings.model_copy(update={"access_key_rate_limit_per_minute": LIMIT, "database_pool_size": 8})
    apps = (create_app(limited), create_app(limited))
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=each), base_url="http://testserver")
            )
            for each in apps
        ]
        yield Api(apps[0], clients[0]), Api(apps[1], clients[1])
    for each in apps:
        await each.state.runtime.stop()


@pytest.fixture
def freeze(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Stop the clock at a time, so that the calls fall in one minute however long they take."""
    return lambda at: monkeypatch.setattr(clock, "now", lambda: at)


async def api_licence(shop: Market) -> tuple[str, str]:
    product = await shop.product(delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    key, body = await access_key(shop, await shop.paid_order(product, "api"))
    return str(body["licence_id"]), key


async def rotate(shop: Market, licence_id: str) -> str:
    rotated = await shop.api.client.post(f"/api/v1/licences/{licence_id}/access-keys", headers=shop.buyer.headers)
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["rate_limit_per_minute"] == LIMIT
    return str(rotated.json()["key"])


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "urn:marketplace:problem:rate-limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_a_rotated_key_gets_what_is_left_of_the_licence_minute(
    workers: tuple[Api, Api], freeze: Callable[[datetime], None]
) -> None:
    shop = await open_market(workers[0])
    other_worker = dataclasses.replace(shop, api=workers[1])
    licence_id, key = await api_licence(shop)
    now = clock.now()
    freeze(now)
    for _ in range(LIMIT):
        assert (await rows(shop, licence_id, key, limit=1)).status_code == 200
    new_key = await rotate(shop, licence_id)

    before = await row_counts(shop.api)
    for market in (shop, other_worker):
        assert_rate_limited(await rows(market, licence_id, new_key, limit=1))
    assert await row_counts(shop.api) == before  # no usage event, no ledger transfer
    assert await usage_calls(shop, licence_id) == LIMIT  # the refused calls were not metered

    freeze(now + timedelta(minutes=1))  # a rate, not a ban: the next minute the new key is answered
    answered = await rows(other_worker, licence_id, new_key, limit=1)
    assert answered.status_code == 200, answered.text
    assert answered.json()["call_number"] == LIMIT + 1


@pytest.mark.postgres
async def test_two_workers_count_every_call_of_the_licence_under_concurrency(
    workers: tuple[Api, Api], freeze: Callable[[datetime], None]
) -> None:
    shop = await open_market(workers[0])
    both = (shop, dataclasses.replace(shop, api=workers[1]))
    licence_id, key = await api_licence(shop)
    freeze(clock.now())
    half = LIMIT // 2
    first = await asyncio.gather(*(rows(both[i % 2], licence_id, key, limit=1) for i in range(half)))
    assert [r.status_code for r in first] == [200] * half
    new_key = await rotate(shop, licence_id)
    # Twice the limit at once with the new key, over both workers: a lost count would let more through.
    second = await asyncio.gather(*(rows(both[i % 2], licence_id, new_key, limit=1) for i in range(2 * LIMIT)))
    assert sorted(r.status_code for r in second) == [200] * (LIMIT - half) + [429] * (LIMIT + half)
    for refused in (r for r in second if r.status_code == 429):
        assert_rate_limited(refused)
    assert await usage_calls(shop, licence_id) == LIMIT

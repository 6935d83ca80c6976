"""Idempotency-Key over HTTP, as marketplace/web/idempotency.py promises it: per caller and key, the
first request runs and its response is stored with its effect, in the request's one transaction; the same
request again gets that response (`Idempotent-Replayed: true`); another request with the key, 422; a
concurrent request with the key waits for the first to commit and gets its response; a request that fails
leaves its key free, so the same request runs again."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from marketplace.demo.factories import plan_body, product_body
from marketplace.kit import clock
from marketplace.ledger.models import Transfer, TransferKind
from marketplace.orders.models import Order
from marketplace.orders.schemas import TradeRequest
from marketplace.web.idempotency import IdempotencyRecord, IdempotencyRepository, request_fingerprint
from tests.catalog.test_products import CLEAN_SAMPLE, upload
from tests.fixtures.api import Person
from tests.orders.conftest import PRICE_MINOR, Market

REPLAYED = "Idempotent-Replayed"


async def count_orders(market: Market) -> int:
    async with market.api.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Order))).scalar_one())


async def payment_transfers(market: Market, order_id: str) -> list[Transfer]:
    async with market.api.sessions() as session:
        query = select(Transfer).where(
            col(Transfer.order_id) == uuid.UUID(order_id), col(Transfer.kind) == TransferKind.PAYMENT
        )
        return list((await session.scalars(query)).all())


async def stored_keys(market: Market) -> list[tuple[str, str]]:
    async with market.api.sessions() as session:
        rows = await session.execute(select(col(IdempotencyRecord.actor), col(IdempotencyRecord.key)))
        return [(actor, key) for actor, key in rows.all()]


async def pay(market: Market, order_id: str, key: str | None, who: Person | None = None) -> httpx.Response:
    headers = dict((who or market.buyer).headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await market.api.client.post(f"/api/v1/orders/{order_id}/pay", headers=headers)


def same_response(first: httpx.Response, again: httpx.Response) -> None:
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["content-type"] == first.headers["content-type"]
    assert REPLAYED not in first.headers
    assert again.headers.get(REPLAYED) == "true"


async def test_the_same_request_three_times_makes_one_order(market: Market) -> None:
    first, second, third = [await market.place(key="buy-traffic-1") for _ in range(3)]
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "accepted"
    same_response(first, second)
    same_response(first, third)
    assert await count_orders(market) == 1
    listed = await market.api.client.get("/api/v1/orders", headers=market.buyer.headers)
    assert [o["id"] for o in listed.json()["items"]] == [first.json()["id"]]


@pytest.mark.postgres
async def test_twenty_requests_at_once_with_one_key_make_one_order(market: Market) -> None:
    """One runs; the others wait on its claim and, once it commits, replay its response."""
    responses = await asyncio.gather(*(market.place(key="buy-at-once") for _ in range(20)))
    assert all(r.status_code == 201 for r in responses), [(r.status_code, r.text) for r in responses]
    [ran] = [r for r in responses if REPLAYED not in r.headers]
    for replayed in responses:
        if replayed is not ran:
            same_response(ran, replayed)
    assert await count_orders(market) == 1


async def claim_held_open(market: Market, key: str) -> tuple[AsyncSession, IdempotencyRepository]:
    """Another request's claim of `key` (the buyer's, for the market's trade), in a transaction left open."""
    fingerprint = request_fingerprint("POST", "/api/v1/orders", TradeRequest(**market.trade()).model_dump(mode="json"))
    session = market.api.sessions()
    repository = IdempotencyRepository(session)
    assert await repository.claim(f"user:{market.buyer.id}", key, fingerprint, clock.now()) is None
    return session, repository


async def wait_until_blocked_on_a_lock(market: Market) -> None:
    """Poll until some backend waits on a lock: the request's insert of the claim held open."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    while True:
        async with market.api.sessions() as session:
            if (await session.execute(query)).scalar_one():
                return
        await asyncio.sleep(0.01)


@pytest.mark.postgres
async def test_a_duplicate_in_flight_waits_for_the_first_and_replays_its_answer(market: Market) -> None:
    first, repository = await claim_held_open(market, "held-key")
    duplicate = asyncio.create_task(market.place(key="held-key"))
    await wait_until_blocked_on_a_lock(market)
    assert not duplicate.done()
    answer = {"id": str(uuid.uuid4()), "status": "accepted"}
    await repository.finish(f"user:{market.buyer.id}", "held-key", 201, answer)
    await first.commit()
    await first.close()
    replayed = await duplicate
    assert (replayed.status_code, replayed.json(), replayed.headers.get(REPLAYED)) == (201, answer, "true")
    assert await count_orders(market) == 0


@pytest.mark.postgres
async def test_a_duplicate_of_a_request_that_rolls_back_runs_itself(market: Market) -> None:
    first, _ = await claim_held_open(market, "doomed-key")
    duplicate = asyncio.create_task(market.place(key="doomed-key"))
    await wait_until_blocked_on_a_lock(market)
    await first.rollback()
    await first.close()
    placed = await duplicate
    assert placed.status_code == 201, placed.text
    assert REPLAYED not in placed.headers
    assert await count_orders(market) == 1
    same_response(placed, await market.place(key="doomed-key"))


async def test_the_same_request_after_it_succeeded_replays_even_when_its_work_would_fail_now(
    market: Market,
) -> None:
    """The order's answer is stored with the order, no claim first: a retry that fails (the product is no longer
    on sale) still finds the answer stored under its key."""
    first = await market.place(key="before-delisting")
    assert first.status_code == 201, first.text
    delisted = await market.api.client.post(
        f"/api/v1/products/{market.product_id}/delist", json={"reason": "retired"}, headers=market.provider.headers
    )
    assert delisted.status_code == 200, delisted.text
    same_response(first, await market.place(key="before-delisting"))
    assert (await market.place(key="after-delisting")).status_code == 404
    assert await count_orders(market) == 1


@pytest.mark.postgres
async def test_a_placement_claims_nothing_before_its_statement(market: Market) -> None:
    """While a placement waits on a lock its order needs, its key is nowhere: no claim was written (let alone
    committed) before the one statement that writes the order and its answer."""
    other = market.api.sessions()
    locked = text("SELECT id FROM product WHERE id = :id FOR UPDATE")
    await other.execute(locked, {"id": uuid.UUID(market.product_id)})
    try:
        placing = asyncio.create_task(market.place(key="waits-on-the-product"))
        await wait_until_blocked_on_a_lock(market)  # its order's key to the product meets the lock
        assert not placing.done()
        assert await stored_keys(market) == []
    finally:
        await other.rollback()
        await other.close()
    placed = await placing
    assert placed.status_code == 201, placed.text
    assert await stored_keys(market) == [(f"user:{market.buyer.id}", "waits-on-the-product")]
    same_response(placed, await market.place(key="waits-on-the-product"))


async def test_another_request_with_the_key_is_refused_and_changes_nothing(market: Market) -> None:
    first = await market.place(key="buy-traffic-2")
    assert first.status_code == 201, first.text
    for other in (
        await market.place(key="buy-traffic-2", quantity=2),
        await market.place(key="buy-traffic-2", scenario="logistics_routing"),
        await pay(market, first.json()["id"], "buy-traffic-2"),  # the same key on another path
    ):
        assert other.status_code == 422, other.text
        assert other.json()["type"].endswith("idempotency-key-reused")
        assert REPLAYED not in other.headers
    assert await count_orders(market) == 1
    assert (await market.order(first.json()["id"]))["status"] == "accepted"
    same_response(first, await market.place(key="buy-traffic-2"))


async def test_keys_are_per_caller(market: Market) -> None:
    api = market.api
    # a colleague in the buyer's organisation sends the very same request with the very same key
    colleague = await api.person("Colleague")
    added = await api.client.post(
        f"/api/v1/organizations/{market.buyer_org['id']}/members",
        json={"email": colleague.email, "role": "member"},
        headers=market.buyer.headers,
    )
    assert added.status_code in (200, 201), added.text
    # and a buyer of another organisation uses the key for its own order
    stranger = await api.person("Other buyer")
    stranger_org = await api.admitted_organization(stranger, market.admin, kind="buyer", dsmm_level=3)

    mine = await market.place(key="order-key")
    theirs = await market.place(key="order-key", as_=colleague)
    other = await market.place(key="order-key", as_=stranger, buyer_organization_id=stranger_org["id"])
    for response in (mine, theirs, other):
        assert response.status_code == 201, response.text
        assert REPLAYED not in response.headers
    assert len({mine.json()["id"], theirs.json()["id"], other.json()["id"]}) == 3
    assert await count_orders(market) == 3
    # each caller's key replays its own order
    same_response(theirs, await market.place(key="order-key", as_=colleague))
    same_response(mine, await market.place(key="order-key"))


async def draft_product(market: Market) -> tuple[str, str]:
    """A complete product of the market's provider with its plan, sample and dataset, not yet submitted for
    listing."""
    api, owner = market.api, market.provider
    body = product_body(market.provider_org["id"], title="Guiyang parking occupancy")
    created = await api.client.post("/api/v1/products", json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    plan = await api.client.post(
        f"/api/v1/products/{product_id}/plans", json=plan_body(PRICE_MINOR), headers=owner.headers
    )
    assert plan.status_code == 201, plan.text
    assert (await upload(api, owner, product_id, "sample.csv", CLEAN_SAMPLE, "text/csv")).status_code == 201
    await api.host_dataset(owner, product_id)
    return product_id, plan.json()["id"]


async def test_a_failed_request_releases_its_key_and_the_same_request_runs_again(market: Market) -> None:
    product_id, plan_id = await draft_product(market)
    trade: dict[str, Any] = {"product_id": product_id, "plan_id": plan_id}
    # not on sale yet: 404, nothing kept, the key free again
    for _ in range(2):
        missing = await market.place(key="early-bird", **trade)
        assert missing.status_code == 404, missing.text
        assert REPLAYED not in missing.headers
        assert await stored_keys(market) == []
    assert await count_orders(market) == 0
    # once it is listed, the same request with the same key runs and places the order
    submitted = await market.api.client.post(f"/api/v1/products/{product_id}/submit", headers=market.provider.headers)
    assert submitted.json()["status"] == "listed", submitted.text
    placed = await market.place(key="early-bird", **trade)
    assert placed.status_code == 201, placed.text
    assert REPLAYED not in placed.headers
    same_response(placed, await market.place(key="early-bird", **trade))
    assert await count_orders(market) == 1


async def test_a_rejected_order_is_a_response_the_key_keeps(market: Market) -> None:
    """The gate's rejection is not a failure of the request: the rejected order is kept, and so is its 422."""
    first = await market.place(key="credit-check", scenario="credit_scoring")
    assert first.status_code == 422, first.text
    assert first.json()["type"].endswith("trade-rejected")
    same_response(first, await market.place(key="credit-check", scenario="credit_scoring"))
    assert await count_orders(market) == 1


async def test_paying_twice_with_one_key_pays_once(market: Market) -> None:
    order = await market.accepted_order()
    first = await pay(market, order["id"], "pay-1")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "paid"
    same_response(first, await pay(market, order["id"], "pay-1"))
    [transfer] = await payment_transfers(market, order["id"])
    assert transfer.amount_minor == PRICE_MINOR
    # without the key, paying again is a transition the order cannot make
    again = await pay(market, order["id"], None)
    assert again.status_code == 409
    assert again.json()["type"].endswith("order-invalid-transition")
    # a new key is a new request: it runs, and finds the order paid
    other_key = await pay(market, order["id"], "pay-2")
    assert other_key.status_code == 409
    assert len(await payment_transfers(market, order["id"])) == 1
    balance = await market.api.client.get(
        f"/api/v1/organizations/{market.provider_org['id']}/balance", headers=market.provider.headers
    )
    assert balance.json()["pending_minor"] == PRICE_MINOR


@pytest.mark.postgres
async def test_twenty_payments_at_once_pay_once(market: Market) -> None:
    """Ten with one key, ten without: one payment runs; the rest get its response (the key's duplicates
    wait for it), or 409 (the order already paid)."""
    order = await market.accepted_order()
    responses = await asyncio.gather(*(pay(market, order["id"], "pay-at-once" if n % 2 else None) for n in range(20)))
    ran = [r for r in responses if r.status_code == 200 and REPLAYED not in r.headers]
    assert len(ran) == 1, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code == 200:
            assert response.json() == ran[0].json()
        else:
            assert response.status_code == 409, response.text
            assert response.json()["type"].endswith("order-invalid-transition"), response.text
    assert len(await payment_transfers(market, order["id"])) == 1
    assert (await market.order(order["id"]))["status"] == "paid"

"""An order whose last licences another order takes between its trade stage and its placement: 409 sold out,
and nothing of it written, neither the order, its verdict, its audit entry, its events nor its Idempotency-Key's
answer (on PostgreSQL its one statement, sent outside any transaction, takes the licences or writes nothing); the
same request runs again once licences are back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from marketplace.audit.models import AuditEntry
from marketplace.catalog.models import Product
from marketplace.compliance.models import StoredVerdict
from marketplace.events.models import PendingEvent
from marketplace.orders.models import Order
from marketplace.orders.repository import OrderRepository
from marketplace.web.idempotency import IdempotencyRecord
from tests.orders.conftest import Market
from tests.orders.factories import licences_remaining
from tests.orders.test_held_trades import limited_market

WRITTEN = (Order, StoredVerdict, AuditEntry, PendingEvent, IdempotencyRecord)


async def counts(market: Market) -> dict[str, int]:
    async with market.api.sessions() as session:
        return {
            model.__name__: int((await session.execute(select(func.count()).select_from(model))).scalar_one())
            for model in WRITTEN
        }


async def set_licences(market: Market, left: int) -> None:
    async with market.api.sessions() as session:
        await session.execute(
            update(Product).where(Product.id == uuid.UUID(market.product_id)).values(licences_remaining=left)  # type: ignore[arg-type]
        )
        await session.commit()


async def test_an_order_whose_licences_went_first_writes_nothing(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = await limited_market(market, 1)
    placed = OrderRepository.insert_placed

    async def another_order_takes_the_last(self: OrderRepository, *args: Any, **kwargs: Any) -> bool:
        await set_licences(market, 0)  # committed by another session, after the trade stage saw one left
        return await placed(self, *args, **kwargs)

    before = await counts(market)
    monkeypatch.setattr(OrderRepository, "insert_placed", another_order_takes_the_last)
    response = await market.place(key="last-licence")
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "urn:marketplace:problem:order-sold-out"
    assert await counts(market) == before
    assert await licences_remaining(market.api.sessions, uuid.UUID(market.product_id)) == 0

    monkeypatch.setattr(OrderRepository, "insert_placed", placed)
    await set_licences(market, 1)
    again = await market.place(key="last-licence")  # the key was left free: the request runs
    assert again.status_code == 201, again.text
    assert (again.json()["status"], again.json()["licences_reserved"]) == ("accepted", 1)
    assert await licences_remaining(market.api.sessions, uuid.UUID(market.product_id)) == 0
    after = await counts(market)
    assert (after["Order"], after["IdempotencyRecord"]) == (before["Order"] + 1, before["IdempotencyRecord"] + 1)

"""Concurrent orders on PostgreSQL, each in its own transaction: a product with 100 licences sells
exactly 100 of them to 2,000 buyers trying at once, never goes below zero, and gets back what
cancelled orders release."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from marketplace.config import Settings
from marketplace.db import create_engine, create_sessionmaker
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.service import InvalidTransition, SoldOut
from tests.fixtures.api import Api
from tests.orders.factories import (
    Listing,
    OrderServices,
    Trader,
    admitted_buyers,
    licences_remaining,
    listing,
)

pytestmark = pytest.mark.postgres

LICENCES = 100
ATTEMPTS = 2_000
CONCURRENCY = 50
BUYERS = 20


async def place(orders: OrderServices, gate: asyncio.Semaphore, buyer: Trader, product: Listing) -> str:
    """One purchase attempt in its own transaction: the order's status, or "sold_out" (nothing stored)."""
    async with gate:
        try:
            async with orders.unit() as service:
                placed = await service.trading.place(buyer.principal, product.trade(buyer))
        except SoldOut:
            return "sold_out"
        return placed.order.status.value


async def test_two_thousand_buyers_get_exactly_the_hundred_licences(
    api: Api, settings: Settings, many_connections: None
) -> None:
    admin = await api.admin()
    provider_person = await api.person("Provider")
    provider_org = await api.admitted_organization(provider_person, admin, kind="provider", dsmm_level=3)
    provider = Trader(provider_person, uuid.UUID(provider_org["id"]))
    product = await listing(api, provider, max_licences=LICENCES)
    buyers = await admitted_buyers(api, admin, BUYERS)
    assert await licences_remaining(api.sessions, product.product_id) == LICENCES

    # one connection for every attempt running at once (pool_size + max_overflow = 2 x 25)
    engine = create_engine(settings.model_copy(update={"database_pool_size": CONCURRENCY // 2}))
    try:
        orders = OrderServices.of(api, create_sessionmaker(engine))
        done = asyncio.Event()
        seen: list[int] = []

        async def watch() -> None:
            while not done.is_set():
                remaining = await licences_remaining(api.sessions, product.product_id)
                assert remaining is not None
                seen.append(remaining)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        gate = asyncio.Semaphore(CONCURRENCY)
        outcomes = Counter(
            await asyncio.gather(*(place(orders, gate, buyers[n % BUYERS], product) for n in range(ATTEMPTS)))
        )
        done.set()
        await watcher
    finally:
        await engine.dispose()

    # every attempt is accounted for: 100 accepted, the rest sold out or rejected by R1 (none left)
    assert outcomes["accepted"] == LICENCES, outcomes
    assert outcomes["sold_out"] + outcomes["rejected"] == ATTEMPTS - LICENCES, outcomes
    assert set(outcomes) <= {"accepted", "sold_out", "rejected"}, outcomes
    print(f"outcomes of {ATTEMPTS} attempts: {dict(outcomes)}")  # noqa: T201
    assert seen
    assert min(seen) >= 0
    assert await licences_remaining(api.sessions, product.product_id) == 0

    async with api.sessions() as session:
        rows = (
            await session.execute(
                select(col(Order.status), func.count(), func.coalesce(func.sum(col(Order.licences_reserved)), 0))
                .where(col(Order.product_id) == product.product_id)
                .group_by(col(Order.status))
            )
        ).all()
        by_status = {status: (count, reserved) for status, count, reserved in rows}
        flagged = (
            await session.scalars(
                select(col(Order.flagged_rules)).where(
                    col(Order.product_id) == product.product_id, col(Order.status) == OrderStatus.REJECTED
                )
            )
        ).all()
    # sold-out attempts left nothing behind; rejected ones are kept, with nothing reserved
    assert by_status == {
        OrderStatus.ACCEPTED: (LICENCES, LICENCES),
        **({OrderStatus.REJECTED: (outcomes["rejected"], 0)} if outcomes["rejected"] else {}),
    }
    assert all(rules == ["R1"] for rules in flagged), Counter(map(tuple, flagged))

    # ten buyers cancel: ten licences come back, once each
    async with api.sessions() as session:
        accepted = (
            await session.execute(
                select(col(Order.id), col(Order.buyer_organization_id))
                .where(col(Order.product_id) == product.product_id, col(Order.status) == OrderStatus.ACCEPTED)
                .limit(10)
            )
        ).all()
    owner = {buyer.organization_id: buyer for buyer in buyers}
    orders = OrderServices.of(api)

    async def cancel(order_id: uuid.UUID, buyer: Trader) -> OrderStatus | InvalidTransition:
        try:
            async with orders.unit() as service:
                return (await service.trading.cancel(buyer.principal, order_id, "changed our mind")).status
        except InvalidTransition as refused:
            return refused

    cancelled = await asyncio.gather(*(cancel(order_id, owner[buyer_id]) for order_id, buyer_id in accepted))
    assert cancelled == [OrderStatus.CANCELLED] * 10
    assert await licences_remaining(api.sessions, product.product_id) == 10
    # cancelling again (concurrently, twice each) releases nothing more
    again = await asyncio.gather(*(cancel(order_id, owner[buyer_id]) for order_id, buyer_id in accepted * 2))
    assert all(isinstance(result, InvalidTransition) for result in again)
    assert await licences_remaining(api.sessions, product.product_id) == 10

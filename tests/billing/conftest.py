"""A market for recurring billing: an admitted provider and buyer, a metered product delivered through the data
API and a subscription product; a gateway whose recurring charges go through or are declined; the jobs run at a
chosen time through the application's runtime; and the books checked as the administrators' route checks them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from marketplace.demo.factories import plan_body
from marketplace.events.models import Event
from marketplace.kit import clock
from marketplace.ledger.service import LedgerCheck
from marketplace.payments.gateway import PaymentState, PaymentStatus
from marketplace.payments.local import LocalGateway
from marketplace.wiring import Runtime
from tests.delivery.conftest import DISTRICT_DATASET, FIELDS, Market, Product, open_market
from tests.fixtures.api import Api

UNIT_PRICE_MINOR = 100
INCLUDED_CALLS = 3
METERED = plan_body(1_000, "metered", pricing_basis="cost", unit_price_minor=UNIT_PRICE_MINOR, included_calls=3)
SUBSCRIPTION_PRICE_MINOR = 30_000
SUBSCRIPTION_DAYS = 30
SUBSCRIPTION = plan_body(SUBSCRIPTION_PRICE_MINOR, "subscription", period_days=SUBSCRIPTION_DAYS)

Job = Callable[[Runtime], Awaitable[dict[str, int]]]


class DecliningGateway(LocalGateway):
    """The local gateway, whose off-session charges are declined while `declining` is set; every charge it is
    asked for is kept, by charge and attempt."""

    def __init__(self) -> None:
        self.declining = False
        self.charges: list[tuple[uuid.UUID, int, int]] = []

    async def charge_saved(
        self,
        *,
        charge_id: uuid.UUID,
        attempt: int,
        amount_minor: int,
        currency: str,
        customer: str | None,
        payment_method: str | None,
    ) -> PaymentState:
        self.charges.append((charge_id, attempt, amount_minor))
        if self.declining:
            return PaymentState(
                f"declined_{charge_id.hex}_{attempt}", PaymentStatus.FAILED, amount_minor, currency, None
            )
        return await super().charge_saved(
            charge_id=charge_id,
            attempt=attempt,
            amount_minor=amount_minor,
            currency=currency,
            customer=customer,
            payment_method=payment_method,
        )


@dataclass
class Billing:
    """The market, and the application's runtime on a gateway the test controls."""

    market: Market
    runtime: Runtime
    gateway: DecliningGateway

    @property
    def api(self) -> Api:
        return self.market.api

    async def metered_licence(self) -> tuple[str, str, str]:
        """A paid order of the metered product, delivered through the data API: (order id, licence id, key)."""
        product = await self.market.product(
            plan=METERED, delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET
        )
        order_id = await self.market.paid_order(product, "api")
        delivery = await self.market.delivery(order_id)
        assert delivery.status_code == 200, delivery.text
        return order_id, delivery.json()["licence_id"], delivery.json()["api_key"]

    async def subscription(self) -> tuple[Product, str, dict[str, Any]]:
        """A paid order of a 30-day subscription delivered as a file: (product, order id, licence)."""
        product = await self.market.product(plan=SUBSCRIPTION)
        order_id = await self.market.paid_order(product)
        return product, order_id, await self.market.licence(order_id)

    async def calls(self, licence_id: str, key: str, count: int) -> list[int]:
        """`count` answered data calls; what each was charged."""
        charges = []
        for _ in range(count):
            response = await self.api.client.get(
                f"/api/v1/data/{licence_id}/rows", params={"limit": 1}, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200, response.text
            charges.append(response.json()["charge_minor"])
        return charges

    async def run(self, job: Job, at: datetime) -> dict[str, int]:
        """A periodic job, run as the worker runs it, with the service's clock at `at` (and back after)."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(clock, "now", lambda: at)
            return await job(self.runtime)

    async def books(self) -> LedgerCheck:
        """The books as `GET /api/v1/admin/ledger/check` checks them; they must be right."""
        async with self.runtime.transaction() as services:
            check = await services.books.check()
        assert check.ok, check
        assert check.usage_checked
        return check

    async def held(self, key: str) -> int:
        """What a ledger account holds (credits - debits; for a receivable, what it is owed: debits - credits)."""
        async with self.runtime.transaction() as services:
            account = await services.ledger.repository.account_by_key(key)
            if account is None:
                return 0
            held = await services.ledger.held(account)
        return -held if key.startswith("buyer_receivable") else held

    async def events(self, subject_id: str) -> list[str]:
        """The event types written about a subject, in commit order."""
        async with self.runtime.transaction() as services:
            await services.events.sequence()
            rows = await services.session.execute(
                select(col(Event.type)).where(col(Event.subject_id) == subject_id).order_by(col(Event.seq))
            )
            return [row[0] for row in rows.all()]


@pytest.fixture
async def billing(api: Api) -> Billing:
    gateway = DecliningGateway()
    return Billing(await open_market(api), api.runtime(gateway=gateway), gateway)

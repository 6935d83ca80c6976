"""Fast set-up for order tests that drive the services directly: traders as principals, services in a
session, products with limited licences. Organisations and products go through the HTTP API once (their
admission and listing are what make them tradable); orders are then placed through OrderService."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.catalog.models import Product
from marketplace.compliance.rulebook import Rulebook
from marketplace.config import Settings
from marketplace.db import SessionMaker
from marketplace.demo.factories import licence_terms
from marketplace.orders.schemas import TradeRequest
from marketplace.payments.gateway import PaymentGateway
from marketplace.payments.local import LocalGateway
from marketplace.wiring import Runtime, Services
from tests.fixtures.api import Api, Person
from tests.orders.conftest import listed_product


@dataclass(frozen=True)
class Trader:
    """A person acting for one admitted organisation."""

    person: Person
    organization_id: uuid.UUID

    @property
    def principal(self) -> Principal:
        return Principal(user_id=uuid.UUID(self.person.id))


def admin_principal(admin: Person) -> Principal:
    return Principal(user_id=uuid.UUID(admin.id), is_admin=True)


@dataclass(frozen=True)
class Listing:
    product_id: uuid.UUID
    plan_id: uuid.UUID
    max_licences: int | None

    def trade(self, buyer: Trader, **changes: Any) -> TradeRequest:
        fields: dict[str, Any] = {
            "product_id": self.product_id,
            "plan_id": self.plan_id,
            "buyer_organization_id": buyer.organization_id,
            "scenario": "traffic_planning",
            "delivery_mode": "file",
            "quantity": 1,
            "accept_licence_terms": True,
            **changes,
        }
        return TradeRequest(**fields)


async def admitted_buyers(api: Api, admin: Person, count: int) -> list[Trader]:
    buyers = []
    for n in range(count):
        person = await api.person(f"Buyer {n}")
        organization = await api.admitted_organization(person, admin, kind="buyer", dsmm_level=3)
        buyers.append(Trader(person, uuid.UUID(organization["id"])))
    return buyers


async def listing(api: Api, provider: Trader, max_licences: int | None, plan: dict[str, Any] | None = None) -> Listing:
    """A listed product of `provider`, its licences limited to `max_licences` (None: unlimited), sold under `plan`
    (default: one-time at PRICE_MINOR)."""
    licence = licence_terms(max_licences=max_licences)
    organization_id = str(provider.organization_id)
    product_id, plan_id = await listed_product(api, provider.person, organization_id, licence=licence, plan=plan)
    return Listing(uuid.UUID(product_id), uuid.UUID(plan_id), max_licences)


async def licences_remaining(sessions: SessionMaker, product_id: uuid.UUID) -> int | None:
    async with sessions() as session:
        product = await session.get(Product, product_id, populate_existing=True)
        assert product is not None
        return product.licences_remaining


@dataclass(frozen=True)
class OrderServices:
    """The application's services on the local gateway, each unit of work in a transaction of its own."""

    runtime: Runtime

    @classmethod
    def of(
        cls,
        api: Api,
        sessions: SessionMaker | None = None,
        gateway: PaymentGateway | None = None,
        rulebook: Rulebook | None = None,
    ) -> OrderServices:
        changes: dict[str, Any] = {"gateway": gateway or LocalGateway()}
        if rulebook is not None:
            changes["rulebook"] = rulebook
        if sessions is not None:
            changes["db_sessions"] = sessions
        return cls(api.runtime(**changes))

    @property
    def sessions(self) -> SessionMaker:
        return self.runtime.db_sessions

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def gateway(self) -> PaymentGateway:
        return self.runtime.gateway

    def service(self, session: AsyncSession) -> Services:
        return Services(session, self.runtime)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Services]:
        """The services of one transaction: committed when the block ends, rolled back if it raises."""
        async with self.runtime.transaction() as services:
            yield services

"""Orders for settlement tests: a provider with a listed product and a buyer, admitted through the API once;
orders taken to completed through OrderService, or, many at once, copied from one such order (same
verdict, product and parties) with their payment posted, as OrderService posts it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlmodel import col

from marketplace.db import SessionMaker, unit_of_work
from marketplace.flows.settlement import SettlementReport
from marketplace.jobs import sequence_audit
from marketplace.kit import clock
from marketplace.kit.money import transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, Payout, Transfer, TransferKind
from marketplace.ledger.service import LedgerCheck, LedgerService
from marketplace.orders.models import Order, OrderEvent, OrderStatus
from marketplace.orders.schemas import RefundPath
from marketplace.payments.gateway import ConnectedAccount, GatewayError, GatewayEvent, PaymentState, PaymentStatus
from marketplace.payments.local import LocalGateway
from marketplace.wiring import Services
from tests.fixtures.api import Api, Person
from tests.orders.factories import Listing, Trader, admin_principal, admitted_buyers, listing

ACTOR = "test"


@dataclass
class RecordingGateway(LocalGateway):
    """The local gateway, recording the transfers and refunds asked of it; `transfer_error` makes
    transfers fail; another `name` makes settlement treat it as a gateway with real accounts."""

    name: str = "local"
    transfer_error: GatewayError | None = None
    transfers: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[uuid.UUID] = field(default_factory=list)

    async def transfer(
        self, *, payout_id: uuid.UUID, destination: str, amount_minor: int, currency: str, transfer_group: str | None
    ) -> str:
        if self.transfer_error is not None:
            raise self.transfer_error
        self.transfers.append(
            {"payout_id": payout_id, "destination": destination, "amount_minor": amount_minor, "currency": currency}
        )
        return f"local_transfer_{payout_id.hex}"

    async def refund(self, *, order_id: uuid.UUID, reference: str, amount_minor: int, currency: str) -> str:
        self.refunds.append(order_id)
        return f"local_refund_{order_id.hex}"

    async def connected_account(self, account_id: str) -> ConnectedAccount:
        return ConnectedAccount(id=account_id, payouts_enabled=True)

    def verify_webhook(self, payload: bytes, signature_header: str) -> GatewayEvent:
        raise NotImplementedError

    async def fetch_payment(self, reference: str) -> PaymentState:
        return PaymentState(reference, PaymentStatus.SUCCEEDED, 0, "CNY", None)


@dataclass
class Shop:
    api: Api
    admin: Person
    provider: Trader
    buyer: Trader
    listing: Listing
    gateway: RecordingGateway = field(default_factory=RecordingGateway)

    @property
    def sessions(self) -> SessionMaker:
        return self.api.sessions

    def orders(self, session: Any) -> Services:
        return Services(session, self.api.runtime(gateway=self.gateway))

    async def completed_order(self) -> uuid.UUID:
        """An order placed, paid, delivered and confirmed through OrderService, each step its own transaction."""
        async with unit_of_work(self.sessions) as session:
            placed = await self.orders(session).trading.place(self.buyer.principal, self.listing.trade(self.buyer))
        order_id = placed.order.id
        assert placed.order.status == OrderStatus.ACCEPTED
        async with unit_of_work(self.sessions) as session:
            await self.orders(session).payment.pay(self.buyer.principal, order_id, None)
        async with unit_of_work(self.sessions) as session:
            await self.orders(session).transitions.deliver(order_id, self.provider.principal.actor)
        async with unit_of_work(self.sessions) as session:
            await self.orders(session).transitions.confirm(self.buyer.principal, order_id)
        return order_id

    async def copies(self, template: uuid.UUID, amounts: Sequence[tuple[int, int]]) -> list[uuid.UUID]:
        """Completed orders like `template`, one per (amount_minor, fee_bps), their payments in escrow."""
        ids = []
        async with unit_of_work(self.sessions) as session:
            original = await session.get(Order, template)
            assert original is not None
            values = original.model_dump()
            ledger = LedgerService(session)
            clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, original.currency)
            rows, events = [], []
            now = clock.now()
            for amount, fee_bps in amounts:
                order_id = uuid.uuid4()
                ids.append(order_id)
                free = amount == 0
                rows.append(
                    {
                        **values,
                        "id": order_id,
                        "status": OrderStatus.COMPLETED,
                        "amount_minor": amount,
                        "fee_bps": fee_bps,
                        "payment_gateway": "free" if free else "local",
                        "payment_reference": f"{'free' if free else 'local_pay'}_{order_id.hex}",
                        "created_at": now,
                        "status_changed_at": now,
                    }
                )
                events.append({"id": uuid.uuid4(), "order_id": order_id, "to_status": OrderStatus.COMPLETED})
            await session.execute(insert(Order), rows)
            await session.execute(insert(OrderEvent), [{**e, "actor": ACTOR, "at": now} for e in events])
            for row in rows:
                if row["amount_minor"]:
                    escrow = await ledger.account(
                        AccountCode.ESCROW,
                        row["currency"],
                        organization_id=row["provider_organization_id"],
                        order_id=row["id"],
                    )
                    await ledger.post(
                        transfer_id(row["id"], "payment"),
                        clearing,
                        escrow,
                        row["amount_minor"],
                        row["currency"],
                        TransferKind.PAYMENT,
                        order_id=row["id"],
                    )
        return ids

    async def settle(self, sessions: SessionMaker | None = None) -> SettlementReport:
        async with (sessions or self.sessions)() as session:
            return await self.orders(session).settlement.run(ACTOR)

    async def refund(self, order_id: uuid.UUID, sessions: SessionMaker | None = None) -> tuple[Order, RefundPath]:
        async with unit_of_work(sessions or self.sessions) as session:
            return await self.orders(session).refunds.refund_after_settlement(
                admin_principal(self.admin), order_id, "test"
            )

    async def status(self, order_id: uuid.UUID) -> Order:
        async with self.sessions() as session:
            order = await session.get(Order, order_id, populate_existing=True)
            assert order is not None
            return order

    async def statuses(self, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, OrderStatus]:
        async with self.sessions() as session:
            rows = await session.execute(select(col(Order.id), col(Order.status)).where(col(Order.id).in_(order_ids)))
            return {row[0]: row[1] for row in rows}

    async def held(self, code: AccountCode, organization_id: uuid.UUID | None = None) -> int:
        """What an account holds (credits - debits; debit-normal provider debt: debits - credits)."""
        async with self.sessions() as session:
            ledger = LedgerService(session)
            account = await ledger.repository.account_by_key(
                ":".join([code.value, *([str(organization_id)] if organization_id else []), "CNY"])
            )
            if account is None:
                return 0
            held = await ledger.held(account)
        return -held if code == AccountCode.PROVIDER_DEBT else held

    async def transfers(self, kind: TransferKind) -> dict[uuid.UUID | None, list[int]]:
        """Amounts of the transfers of one kind, per order."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(col(Transfer.order_id), col(Transfer.amount_minor)).where(col(Transfer.kind) == kind)
            )
            found: dict[uuid.UUID | None, list[int]] = {}
            for order_id, amount in rows:
                found.setdefault(order_id, []).append(amount)
            return found

    async def payouts(self) -> list[Payout]:
        async with self.sessions() as session:
            return list((await session.scalars(select(Payout).order_by(col(Payout.created_at)))).all())

    async def check(self) -> LedgerCheck:
        """The books, with every order's escrow compared with what the order says."""
        async with self.sessions() as session:
            expected = await self.orders(session).orders.expected_escrow()
            return await LedgerService(session).check(expected)

    async def account_count(self) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(LedgerAccount))).scalar_one())

    async def audit_ok(self) -> bool:
        """The audit log verifies once the sequencer has made every entry a leaf."""
        runtime = self.api.runtime()
        await sequence_audit(runtime)
        async with runtime.transaction() as services:
            return (await services.transparency.verify()).ok


async def open_shop(api: Api) -> Shop:
    admin = await api.admin()
    person = await api.person("Provider")
    organization = await api.admitted_organization(person, admin, kind="provider", dsmm_level=3)
    provider = Trader(person, uuid.UUID(organization["id"]))
    product = await listing(api, provider, None)
    [buyer] = await admitted_buyers(api, admin, 1)
    return Shop(api, admin, provider, buyer, product)

"""The books: an organisation's balance as its members see it, and the check that the ledger balances, every
order's (and renewal's) escrow holds what it says, and buyers owe and orders accrue what their usage billed."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.billing.service import BillingService
from marketplace.ledger.service import Balance, ExpectedUsage, LedgerCheck, LedgerService
from marketplace.orders.service import OrderService


class Books:
    def __init__(
        self,
        session: AsyncSession,
        accounts: AccountService,
        orders: OrderService,
        ledger: LedgerService,
        billing: BillingService,
    ) -> None:
        self.session = session
        self.accounts = accounts
        self.orders = orders
        self.ledger = ledger
        self.billing = billing

    async def balance(self, principal: Principal, organization_id: uuid.UUID, currency: str) -> Balance:
        """The balance as its members (or its keys) and administrators see it; the organisation does not
        exist for anyone else."""
        await self.accounts.visible_organization(principal, organization_id)
        return await self.ledger.balance(organization_id, currency)

    async def check(self) -> LedgerCheck:
        """Orders and the ledger read as of one moment: a transaction whose statements all read one snapshot
        (PostgreSQL: REPEATABLE READ; SQLite's writers take turns)."""
        await self.session.commit()
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        escrow = await self.orders.expected_escrow() | await self.billing.renewal_escrow()
        usage = ExpectedUsage(*await self.billing.expected_usage())
        return await self.ledger.check(escrow, usage)

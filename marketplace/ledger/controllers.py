"""HTTP endpoints of the ledger: an organisation's balance, the administrators' check of the books."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, QueryParameter

from marketplace.accounts.guards import ADMIN_ONLY, AUTHENTICATED, SECURITY, Caller
from marketplace.db import DbSession
from marketplace.errors import problem_responses
from marketplace.ledger.schemas import BalanceRead, LedgerCheckRead
from marketplace.ledger.service import LedgerService

Currency = Annotated[str, QueryParameter(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code")]


class BalanceController(Controller):
    path = "/api/v1/organizations"
    tags = ["money"]
    dependencies = AUTHENTICATED
    security = SECURITY

    @get("/{organization_id:uuid}/balance", responses=problem_responses(401, 403, 404))
    async def balance(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, db_session: DbSession, currency: Currency = "CNY"
    ) -> BalanceRead:
        """The organisation's money in one currency: available (settled, not paid out), pending (held in
        escrow on its orders), paid out, and owed back for refunds after payout."""
        balance = await LedgerService(db_session).organization_balance(principal, organization_id, currency)
        return BalanceRead.model_validate(balance)


class AdminLedgerController(Controller):
    path = "/api/v1/admin/ledger"
    tags = ["administration"]
    dependencies = ADMIN_ONLY
    security = SECURITY

    @get("/check", responses=problem_responses(401, 403))
    async def check(self, admin: Caller, db_session: DbSession) -> LedgerCheckRead:
        """Check the books in one reading: debits equal credits in every currency, every account's totals
        equal the sums of its transfers, no no-overdraft account is negative. Escrow is not yet compared
        with open orders (`escrow_checked` is false)."""
        return LedgerCheckRead.model_validate(await LedgerService(db_session).check())

"""HTTP endpoints of the ledger: an organisation's balance, the administrators' check of the books and
their settlement runs."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.guards import ADMIN_ONLY, AUTHENTICATED, SECURITY, Caller
from marketplace.compliance.guards import CurrentRulebook
from marketplace.db import DbSession
from marketplace.errors import problem_responses
from marketplace.ledger.schemas import BalanceRead, LedgerCheckRead, SettlementRead
from marketplace.ledger.service import LedgerService
from marketplace.ledger.settlement import SettlementService
from marketplace.orders.controllers import ORDERS, IdempotencyKey, Orders
from marketplace.orders.idempotency import request_fingerprint, run_idempotently
from marketplace.payments.gateways import app_gateway

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


async def _one_snapshot(session: AsyncSession) -> None:
    """Start a transaction whose statements all read one snapshot (PostgreSQL: REPEATABLE READ), so that
    what the orders and the ledger say is compared as of one moment. SQLite's writers take turns."""
    await session.commit()
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


class AdminLedgerController(Controller):
    path = "/api/v1/admin/ledger"
    tags = ["administration"]
    dependencies = {**ADMIN_ONLY, **ORDERS}
    security = SECURITY

    @get("/check", responses=problem_responses(401, 403))
    async def check(self, admin: Caller, db_session: DbSession, orders: Orders) -> LedgerCheckRead:
        """Check the books in one reading: debits equal credits in every currency, every account's totals
        equal the sums of its transfers, no no-overdraft account is negative, and every order's escrow
        holds exactly what the order says (its amount while paid, delivered, completed or disputed;
        nothing once settled, refunded or cancelled): `escrow_checked` is true and `escrow_mismatches`
        lists the orders whose escrow differs."""
        await _one_snapshot(db_session)
        expected = await orders.expected_escrow()
        return LedgerCheckRead.model_validate(await LedgerService(db_session).check(expected))


class AdminSettlementController(Controller):
    path = "/api/v1/admin/settlements"
    tags = ["administration"]
    dependencies = ADMIN_ONLY
    security = SECURITY

    @post("/", status_code=200, responses=problem_responses(401, 403, 409, 422))
    async def settle(
        self,
        request: Request[Any, Any, State],
        admin: Caller,
        db_session: DbSession,
        rulebook: CurrentRulebook,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[SettlementRead]:
        """Run settlement now, as `marketplace settle` does: time-outs and auto-confirmations, then every
        completed order settled (escrow split into the provider's payable and the platform's fee), then
        payouts to providers through the gateway (the provider's debt repaid first). Safe to run again, or
        at the same time as another run: an order settles once and a share is paid out once."""
        state = request.app.state
        service = SettlementService(db_session, state.settings, app_gateway(state), rulebook)

        async def action() -> tuple[int, Any]:
            report = await service.run(admin.actor)
            return 200, SettlementRead.model_validate(report).model_dump(mode="json")

        return await run_idempotently(
            db_session,
            actor=admin.actor,
            key=idempotency_key,
            fingerprint=request_fingerprint(request.method, request.url.path, None),
            lock_seconds=state.settings.idempotency_lock_seconds,
            action=action,
        )

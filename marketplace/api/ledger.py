"""HTTP endpoints of the ledger: an organisation's balance, the administrators' check of the books and
their settlement runs."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from marketplace.accounts.models import Scope
from marketplace.flows.books import Books
from marketplace.flows.settlement import Settlement
from marketplace.ledger.schemas import BalanceRead, LedgerCheckRead, SettlementRead
from marketplace.web.idempotency import idempotent
from marketplace.web.principal import ADMIN_ONLY, AUTHENTICATED, Access, Caller
from marketplace.web.problems import problem_responses

Currency = Annotated[str, QueryParameter(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code")]


class BalanceController(Controller):
    path = "/api/v1/organizations"
    tags = ["money"]
    dependencies = AUTHENTICATED

    @get(
        "/{organization_id:uuid}/balance", responses=problem_responses(401, 403, 404), opt={"scope": Scope.BALANCE_READ}
    )
    async def balance(
        self,
        organization_id: FromPath[uuid.UUID],
        principal: Caller,
        books: NamedDependency[Books],
        currency: Currency = "CNY",
    ) -> BalanceRead:
        """The organisation's money in one currency: available (settled, not paid out), pending (held in
        escrow on its orders), paid out, and owed back for refunds after payout."""
        balance = await books.balance(principal, organization_id, currency)
        return BalanceRead.model_validate(balance)


class AdminLedgerController(Controller):
    path = "/api/v1/admin/ledger"
    tags = ["administration"]
    dependencies = ADMIN_ONLY

    @get("/check", responses=problem_responses(401, 403), opt={"scope": Access.ADMIN})
    async def check(self, admin: Caller, books: NamedDependency[Books]) -> LedgerCheckRead:
        """Check the books in one reading: debits equal credits in every currency, every account's totals
        equal the sums of its transfers, no no-overdraft account is negative, and every order's escrow
        holds exactly what the order says (its amount while paid, delivered, completed or disputed;
        nothing once settled, refunded or cancelled; a subscription renewal's, its amount while paid and not
        settled): `escrow_checked` is true and `escrow_mismatches` lists those whose escrow differs. And
        recurring billing's books (`usage_checked`): every buyer's receivable is owed exactly the metered calls
        billed to it less the usage statements collected, and every order's accrued usage holds exactly its
        calls billed less the statements settled to its provider."""
        return LedgerCheckRead.model_validate(await books.check())


class AdminSettlementController(Controller):
    path = "/api/v1/admin/settlements"
    tags = ["administration"]
    dependencies = ADMIN_ONLY

    @post("/", status_code=200, responses=problem_responses(401, 403, 409, 422), opt={"scope": Access.ADMIN})
    @idempotent
    async def settle(self, admin: Caller, settlement: NamedDependency[Settlement]) -> SettlementRead:
        """Run settlement now, as `marketplace settle` does: time-outs and auto-confirmations, then every
        completed order settled (escrow split into the provider's payable and the platform's fee), then
        payouts to providers through the gateway (the provider's debt repaid first). Safe to run again, or
        at the same time as another run: an order settles once and a share is paid out once."""
        return SettlementRead.model_validate(await settlement.run(admin.actor))

"""HTTP endpoints of recurring billing: the usage statements of metered licences, read by their parties, and the
administrators' on-demand billing run."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from marketplace.accounts.models import Scope
from marketplace.billing.models import ChargeStatus, UsageStatement
from marketplace.billing.schemas import BillingRunRead, StatementRun, UsageStatementPage, UsageStatementRead
from marketplace.billing.service import BillingService
from marketplace.flows.billing import RecurringBilling
from marketplace.web.idempotency import idempotent
from marketplace.web.pagination import PAGED, Paging
from marketplace.web.principal import ADMIN_ONLY, AUTHENTICATED, Access, Caller
from marketplace.web.problems import problem_responses

Billing = NamedDependency[BillingService]


def statement_read(statement: UsageStatement) -> UsageStatementRead:
    return UsageStatementRead.model_validate(statement, from_attributes=True)


class UsageStatementController(Controller):
    path = "/api/v1/usage-statements"
    tags = ["billing"]
    dependencies = {**AUTHENTICATED, **PAGED}

    @get("/", responses=problem_responses(400, 401, 403), opt={"scope": Scope.BILLING_READ})
    async def list_statements(
        self,
        principal: Caller,
        billing: Billing,
        page: Paging,
        licence_id: Annotated[uuid.UUID | None, QueryParameter(description="one licence's statements")] = None,
        status: Annotated[ChargeStatus | None, QueryParameter(description="statements in this status")] = None,
    ) -> UsageStatementPage:
        """The usage statements of the caller's organisations, as buyer or provider (administrators: all), the
        latest month first."""
        rows, total = await billing.statements(principal, licence_id, status, limit=page.limit, offset=page.offset)
        return UsageStatementPage(items=[statement_read(row) for row in rows], total=total)

    @get("/{statement_id:uuid}", responses=problem_responses(401, 403, 404), opt={"scope": Scope.BILLING_READ})
    async def get_statement(
        self, statement_id: FromPath[uuid.UUID], principal: Caller, billing: Billing
    ) -> UsageStatementRead:
        """A usage statement of the caller's organisation, as buyer or provider: its month, calls, billed calls,
        amount and collection."""
        return statement_read(await billing.statement(principal, statement_id))


class AdminBillingController(Controller):
    path = "/api/v1/admin/usage-statements"
    tags = ["administration"]
    dependencies = ADMIN_ONLY

    @post("/", status_code=200, responses=problem_responses(400, 401, 403, 409, 422), opt={"scope": Access.ADMIN})
    @idempotent
    async def run(
        self, admin: Caller, data: JSONBody[StatementRun], recurring_billing: NamedDependency[RecurringBilling]
    ) -> BillingRunRead:
        """Issue now the statements of the months that have ended (of one licence, or every metered licence),
        then collect the statements due, as the `usage_statements` and `collect_usage` jobs do. Safe to run
        again, or at once with the jobs: a licence's month has one statement, collected once."""
        issued = await recurring_billing.issue_statements(admin.actor, data.licence_id)
        collected = await recurring_billing.collect_usage(admin.actor)
        return BillingRunRead(
            issued=[statement_read(statement) for statement in issued],
            paid=collected.paid,
            failed=collected.failed,
            waiting=collected.waiting,
            suspended_licences=collected.suspended,
        )

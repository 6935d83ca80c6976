"""Request and response shapes of the billing endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from marketplace.billing.models import ChargeStatus
from marketplace.kit.schemas import RequestBody, ResponseBody


class UsageStatementRead(ResponseBody):
    """A metered licence's month: its calls, those billed beyond the included ones, and what they cost."""

    id: uuid.UUID
    licence_id: uuid.UUID
    order_id: uuid.UUID
    buyer_organization_id: uuid.UUID
    provider_organization_id: uuid.UUID
    period: str = Field(description="the calendar month (UTC) the calls were made in, e.g. 2026-11")
    period_start: datetime
    period_end: datetime
    calls: int = Field(description="metered calls in the month")
    billable_calls: int = Field(description="calls beyond the plan's included ones, each billed its unit price")
    amount_minor: int
    currency: str
    status: ChargeStatus = Field(
        description="issued: to be collected; paid: collected; failed: the last attempt was declined, tried again "
        "at next_attempt_at"
    )
    attempts: int = Field(description="declined collection attempts so far")
    next_attempt_at: datetime | None
    created_at: datetime
    paid_at: datetime | None
    settled_at: datetime | None = Field(description="when the money went to the provider (less the platform fee)")


class UsageStatementPage(ResponseBody):
    items: list[UsageStatementRead]
    total: int


class StatementRun(RequestBody):
    """Issue statements now, for one licence or (none given) every metered licence."""

    licence_id: uuid.UUID | None = None


class BillingRunRead(ResponseBody):
    """What an on-demand billing run did."""

    issued: list[UsageStatementRead] = Field(description="the statements issued by this run")
    paid: int = Field(description="charges collected")
    failed: int = Field(description="charges declined (tried again on the retry schedule)")
    waiting: int = Field(description="charges the gateway has not decided, or could not be asked about")
    suspended_licences: int

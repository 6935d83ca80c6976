"""Request and response shapes of the payments endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import StringConstraints

from marketplace.kit.schemas import RequestBody, ResponseBody

# What any gateway's account ids look like; each gateway checks its own form (Stripe: acct_...).
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class PaymentAccountUpdate(RequestBody):
    """The provider's account at the payment gateway, where its payouts go."""

    account_id: AccountId


class PaymentAccountRead(ResponseBody):
    organization_id: uuid.UUID
    gateway: str
    account_id: str | None
    payouts_enabled: bool


class WebhookReceipt(ResponseBody):
    """`processed`: the object was fetched again and its state applied; `duplicate`: this event was
    received before, nothing was done; `ignored`: recorded, but nothing in the marketplace acts on it."""

    status: Literal["processed", "duplicate", "ignored"]

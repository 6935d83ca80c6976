"""Request and response shapes of the payments endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

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


# What a setup reference looks like at any gateway (Stripe: seti_...).
SetupReference = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_-]+$")]


class PaymentMethodSetupRead(ResponseBody):
    """A setup of the buyer's payment method for the charges it is not present for (usage statements, renewals)."""

    organization_id: uuid.UUID
    gateway: str
    setup_reference: str = Field(description="the gateway's setup (Stripe: a SetupIntent id), to confirm it by")
    client_secret: str | None = Field(
        description="for the buyer's client to confirm the setup with the gateway (none when nothing is left to do)"
    )
    saved: bool = Field(description="a payment method is saved: recurring charges use it off-session")


class PaymentMethodConfirm(RequestBody):
    """A setup the buyer's client confirmed with the gateway: the service fetches it there and, once it succeeded,
    saves its payment method."""

    setup_reference: SetupReference


class PaymentMethodRead(ResponseBody):
    organization_id: uuid.UUID
    gateway: str
    saved: bool = Field(description="a payment method is saved: recurring charges use it off-session")

"""The webhook inbox: every verified gateway event, recorded once by its id; and the payment method a buyer saved
at the gateway for the charges it is not present for (usage statements, renewals).

The inbox row is inserted in the same transaction as the event's effect, so an event is applied at most
once however often the gateway delivers it, and an effect that fails leaves no row (the gateway
delivers it again)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from marketplace.kit import clock
from marketplace.kit.sqltypes import UTCDateTime, enum_column


class WebhookOutcome(enum.StrEnum):
    PROCESSED = "processed"  # the object was fetched again and its state handed on
    IGNORED = "ignored"  # an event of a type (or about an object) the marketplace does not act on


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_event"

    id: str = Field(primary_key=True, max_length=255)  # the gateway's event id
    gateway: str = Field(max_length=16)
    type: str = Field(max_length=255)
    object_id: str = Field(max_length=255, index=True)
    # Set with processed_at in the transaction that records the event.
    outcome: WebhookOutcome | None = Field(default=None, sa_type=enum_column(WebhookOutcome))
    received_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SavedPaymentMethod(SQLModel, table=True):
    """A buyer's customer at the gateway and the payment method it saved there (a Stripe SetupIntent's), which
    recurring charges use off-session. One per organisation and gateway."""

    __tablename__ = "saved_payment_method"

    organization_id: uuid.UUID = Field(foreign_key="organization.id", primary_key=True)
    gateway: str = Field(max_length=16, primary_key=True)
    customer: str = Field(max_length=255)
    # The last setup asked for: its confirmation (or its webhook) records the method.
    setup_reference: str | None = Field(default=None, max_length=255)
    # None until a setup succeeds.
    payment_method: str | None = Field(default=None, max_length=255)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

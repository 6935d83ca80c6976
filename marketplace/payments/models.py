"""The webhook inbox: every verified gateway event, recorded once by its id.

The row is inserted in the same transaction as the event's effect, so an event is applied at most
once however often the gateway delivers it, and an effect that fails leaves no row (the gateway
delivers it again)."""

from __future__ import annotations

import enum
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

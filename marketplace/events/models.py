"""The event outbox: one row per state change a party cares about, the organisations it concerns, and the
events written but not yet numbered in commit order (PostgreSQL); and the outbound webhooks that carry events
to organisations' endpoints: endpoints, their sealed secrets, deliveries and their attempts."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Identity, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column, json_document


class EventType(enum.StrEnum):
    """What happened, `<subject>.<what>`."""

    ORDER_PLACED = "order.placed"
    ORDER_ACCEPTED = "order.accepted"
    ORDER_HELD = "order.held"  # the trade stage held it for an administrator (pending_review)
    ORDER_REJECTED = "order.rejected"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_PAID = "order.paid"
    ORDER_DELIVERED = "order.delivered"
    ORDER_DISPUTED = "order.disputed"
    ORDER_RESOLVED = "order.resolved"  # a dispute decided; followed by order.refunded or order.completed
    ORDER_COMPLETED = "order.completed"
    ORDER_SETTLED = "order.settled"
    ORDER_PAID_OUT = "order.paid_out"
    ORDER_REFUNDED = "order.refunded"
    PAYOUT_SENT = "payout.sent"
    PAYOUT_FAILED = "payout.failed"
    LICENCE_GRANTED = "licence.granted"
    LICENCE_SUSPENDED = "licence.suspended"
    LICENCE_REINSTATED = "licence.reinstated"
    LICENCE_REVOKED = "licence.revoked"
    LICENCE_EXPIRED = "licence.expired"
    LICENCE_RENEWED = "licence.renewed"  # a subscription's renewal paid: the licence runs a period longer
    PRODUCT_HELD = "product.held"  # the listing stage held a version for an administrator
    PRODUCT_LISTED = "product.listed"
    PRODUCT_REJECTED = "product.rejected"
    PRODUCT_DELISTED = "product.delisted"
    PRODUCT_REGRADED = "product.regraded"
    ORGANIZATION_HELD = "organization.held"  # the admission stage held it for an administrator
    ORGANIZATION_ADMITTED = "organization.admitted"
    ORGANIZATION_REJECTED = "organization.rejected"
    ORGANIZATION_SUSPENDED = "organization.suspended"
    ORGANIZATION_REINSTATED = "organization.reinstated"
    USAGE_STATEMENT_ISSUED = "usage_statement.issued"  # a metered licence's month stated
    USAGE_STATEMENT_PAID = "usage_statement.paid"  # collected
    USAGE_STATEMENT_FAILED = "usage_statement.failed"  # a collection attempt declined (tried again later)
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"  # its deliveries failed for days


class Event(SQLModel, table=True):
    __tablename__ = "event"
    # Administrators page through every event of one type.
    __table_args__ = (Index("ix_event_type_seq", "type", "seq"),)

    # Commit order, as the sequencer saw it (see `events.repository`): the cursor readers page by.
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    # Stable public id (receivers of webhooks deduplicate by it).
    id: uuid.UUID = Field(unique=True)
    type: str = Field(max_length=64)
    subject_type: str = Field(max_length=40)
    subject_id: str = Field(max_length=64)
    # The subject's public state: ids, statuses, amounts; never personal data or secrets.
    payload: dict[str, Any] = Field(sa_type=json_document())
    created_at: datetime = Field(sa_type=UTCDateTime)


class EventParty(SQLModel, table=True):
    """An organisation an event concerns: a party's feed is an index range on (organization_id, event_seq)."""

    __tablename__ = "event_party"

    organization_id: uuid.UUID = Field(primary_key=True)
    event_seq: int = Field(sa_column=Column(BigInteger, ForeignKey("event.seq"), primary_key=True, index=True))


class PendingEvent(SQLModel, table=True):
    """An event written by a committed or committing transaction and not yet given its number in the feed
    (PostgreSQL; on SQLite events are numbered as they are written). The sequencer moves pending events into
    `event`, numbered in the order of `number` (see `events.repository`)."""

    __tablename__ = "pending_event"

    # Taken from a sequence when the row is inserted: the order events were written in, not their commit order.
    number: int = Field(sa_column=Column(BigInteger, Identity(), primary_key=True))
    id: uuid.UUID
    type: str = Field(max_length=64)
    subject_type: str = Field(max_length=40)
    subject_id: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_type=json_document())
    created_at: datetime = Field(sa_type=UTCDateTime)
    # The organisations it concerns, as a list of ids.
    parties: list[str] = Field(sa_type=json_document())


class WebhookEndpoint(SQLModel, table=True):
    """Where an organisation wants the events that concern it, of the types it names."""

    __tablename__ = "webhook_endpoint"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(index=True)
    url: str = Field(max_length=2000)
    # Types (`order.paid`) and prefixes ending in a dot (`order.`).
    event_types: list[str] = Field(sa_type=json_document())
    enabled: bool = True
    # The last event number fanned out to it (see `WebhookService.fan_out`).
    cursor_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class WebhookSecret(SQLModel, table=True):
    """A signing secret of an endpoint, sealed (kit/sealed.py); the current one has no `expires_at`, a rotated
    one signs beside it until then."""

    __tablename__ = "webhook_secret"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id", index=True)
    sealed: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its time, or for the endpoint's earlier deliveries
    SENDING = "sending"  # claimed by a worker until `claimed_until`
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # abandoned after the last retry; the endpoint was disabled


OPEN_DELIVERY_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint. An endpoint's deliveries are sent one at a time, in event order."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_seq", name="uq_webhook_delivery_endpoint_event"),
        Index("ix_webhook_delivery_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id")
    event_seq: int = Field(sa_column=Column(BigInteger, ForeignKey("event.seq"), nullable=False))
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, sa_type=enum_column(DeliveryStatus))
    # Attempts made, and failures since the last success or replay (which pick the next wait).
    attempts: int = 0
    failures: int = 0
    # How often it was claimed: a claim and the result it records name the same number (guarded updates).
    claims: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    """One try at sending a delivery: when, what came back, how long it took."""

    __tablename__ = "webhook_attempt"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    delivery_id: uuid.UUID = Field(foreign_key="webhook_delivery.id", index=True)
    attempted_at: datetime = Field(sa_type=UTCDateTime)
    status_code: int | None = None
    duration_ms: int
    succeeded: bool
    error: str | None = Field(default=None, max_length=300)
    # The start of the answer's body, as text.
    response_snippet: str = Field(default="", max_length=1024)

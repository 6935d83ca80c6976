"""The event outbox: one row per state change a party cares about, the organisations it concerns, and the
clock that numbers events in commit order."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from marketplace.kit.sqltypes import UTCDateTime, json_document


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


class Event(SQLModel, table=True):
    __tablename__ = "event"
    # Administrators page through every event of one type.
    __table_args__ = (Index("ix_event_type_seq", "type", "seq"),)

    # Commit order (see `EventClock`): the cursor readers page by.
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


class EventClock(SQLModel, table=True):
    """One row: the last event's number. Recording an event advances it with an upsert that locks the row
    until the transaction ends, so numbers are handed out in commit order (see `EventRepository.append`)."""

    __tablename__ = "event_clock"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))

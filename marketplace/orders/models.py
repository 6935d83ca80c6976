"""Orders (trades) and their status history.

The table is `trade_order` ("order" is an SQL keyword). An order's amount, currency and fee are
fixed when it is placed; its status changes only by guarded updates (see OrderRepository.move)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index
from sqlmodel import Field, SQLModel

from marketplace.compliance.contract import Decision
from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime, enum_column, json_document


class OrderStatus(enum.StrEnum):
    PENDING_REVIEW = "pending_review"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    PAID = "paid"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    SETTLED = "settled"
    PAID_OUT = "paid_out"
    DISPUTED = "disputed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


# Orders whose buyer's money is held in escrow: the ledger check compares them with escrow accounts.
ESCROW_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.DELIVERED, OrderStatus.COMPLETED, OrderStatus.DISPUTED})
# Orders that still hold a licence reservation (released on cancel and refund).
RESERVING_STATUSES = frozenset(
    {
        OrderStatus.ACCEPTED,
        OrderStatus.PAID,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
        OrderStatus.SETTLED,
        OrderStatus.PAID_OUT,
        OrderStatus.DISPUTED,
    }
)
# Orders no rule change can touch any more.
FINAL_STATUSES = frozenset({OrderStatus.REJECTED, OrderStatus.REFUNDED, OrderStatus.CANCELLED, OrderStatus.PAID_OUT})


class Order(SQLModel, table=True):
    __tablename__ = "trade_order"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_trade_order_buyer_created", "buyer_organization_id", "created_at"),
        Index("ix_trade_order_provider_created", "provider_organization_id", "created_at"),
        # Sweeps (time-outs, auto-confirm) and settlement read orders by status and age.
        Index("ix_trade_order_status_changed", "status", "status_changed_at"),
        # The console's trades and amounts per day (read from the index alone on PostgreSQL).
        Index("ix_trade_order_created", "created_at", postgresql_include=["currency", "amount_minor"]),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    buyer_organization_id: uuid.UUID = Field(foreign_key="organization.id")
    provider_organization_id: uuid.UUID = Field(foreign_key="organization.id")
    intermediary_organization_id: uuid.UUID | None = Field(default=None, foreign_key="organization.id")
    product_id: uuid.UUID = Field(foreign_key="product.id", index=True)
    product_version_id: uuid.UUID = Field(foreign_key="product_version.id")
    plan_id: uuid.UUID = Field(foreign_key="price_plan.id")
    placed_by: str = Field(max_length=80)
    scenario: str = Field(max_length=64)
    delivery_mode: str = Field(max_length=24)
    quantity: int
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    fee_bps: int
    status: OrderStatus = Field(sa_type=enum_column(OrderStatus))
    # The trade-stage verdict: its decision, and the rules that failed or asked for review.
    verdict_id: uuid.UUID = Field(foreign_key="verdict.id")
    decision: Decision = Field(sa_type=enum_column(Decision))
    flagged_rules: list[str] = Field(default_factory=list, sa_type=json_document())
    licences_reserved: int = 0
    payment_gateway: str | None = Field(default=None, max_length=16)
    payment_reference: str | None = Field(default=None, max_length=120, unique=True)
    refund_reference: str | None = Field(default=None, max_length=120)
    payout_id: uuid.UUID | None = Field(default=None, index=True)
    dispute_reason: str | None = Field(default=None, max_length=2000)
    status_changed_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class OrderEvent(SQLModel, table=True):
    """One status change of an order: its history, as `GET /orders/{id}` shows it."""

    __tablename__ = "order_event"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="trade_order.id", index=True)
    from_status: OrderStatus | None = Field(default=None, sa_type=enum_column(OrderStatus))
    to_status: OrderStatus = Field(sa_type=enum_column(OrderStatus))
    actor: str = Field(max_length=80)
    reason: str | None = Field(default=None, max_length=2000)
    at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

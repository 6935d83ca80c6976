"""What the exchange has done, counted from its tables for `GET /metrics`.

Counted from rows rather than from events one process saw, so every worker answers the same and what
the commands did (the demo, settlement) is counted too. Each count is one grouped query over a column
the rows are kept by; nothing personal or secret is a label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from marketplace.compliance.models import StoredVerdict
from marketplace.delivery.models import DeliveryReceipt, UsageEvent
from marketplace.ledger.models import Payout
from marketplace.orders.models import Order
from marketplace.payments.models import WebhookEvent


@dataclass(frozen=True)
class Count:
    """A gauge: how many rows have each combination of the labels' values."""

    name: str
    description: str
    labels: tuple[str, ...]
    values: list[tuple[tuple[str, ...], int]]


def _grouped(*columns: Any) -> Select[Any]:
    return select(*columns, func.count()).group_by(*columns)


COUNTED: tuple[tuple[str, str, tuple[str, ...], Select[Any]], ...] = (
    ("marketplace_orders", "Orders by status", ("status",), _grouped(col(Order.status))),
    (
        "marketplace_verdicts",
        "Verdicts of the rulebook by stage and decision",
        ("stage", "decision"),
        _grouped(col(StoredVerdict.stage), col(StoredVerdict.decision)),
    ),
    ("marketplace_deliveries", "Delivery receipts by kind", ("kind",), _grouped(col(DeliveryReceipt.kind))),
    ("marketplace_data_calls", "Metered data calls by endpoint", ("endpoint",), _grouped(col(UsageEvent.endpoint))),
    (
        "marketplace_webhook_events",
        "Payment gateway webhook events by outcome",
        ("gateway", "outcome"),
        _grouped(col(WebhookEvent.gateway), col(WebhookEvent.outcome)),
    ),
    ("marketplace_payouts", "Payouts by status", ("status",), _grouped(col(Payout.status))),
)


def _label(value: Any) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


async def exchange_counts(session: AsyncSession) -> list[Count]:
    counts = []
    for name, description, labels, query in COUNTED:
        rows = (await session.execute(query)).all()
        values = [(tuple(_label(value) for value in row[:-1]), int(row[-1])) for row in rows]
        counts.append(Count(name, description, labels, values))
    return counts

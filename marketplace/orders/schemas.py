"""Request and response shapes of the orders API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from marketplace.compliance.contract import Decision
from marketplace.compliance.schemas import FindingRead, VerdictBrief, VerdictRead
from marketplace.kit.schemas import NO_NUL_PATTERN, WHOLE_NUMBER, Reason, RequestBody, ResponseBody
from marketplace.orders.models import OrderStatus
from marketplace.payments.gateway import PaymentStatus

# As declared, within its column: R1 judges that it is one of the product's permitted scenarios (none, no
# trade) and S3 that it is within the consented purposes, with a verdict stored with the order.
Scenario = Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL_PATTERN)]
DeliveryMode = Literal["file", "api", "privacy_computing"]
Quantity = Annotated[StrictInt, Field(ge=1, le=1_000_000), WHOLE_NUMBER]


class TradeRequest(RequestBody):
    """What a buyer asks for: the same fields preview a trade and place its order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "product_id": "01932f6e-7c2a-7b3e-9a41-5d2f8e6c1a07",
                    "plan_id": "01932f6e-7d10-7f02-8c55-0b9e3a7d4f12",
                    "buyer_organization_id": "01932f6d-f1a4-7a9c-b3d2-6e8f0c2b5a94",
                    "scenario": "traffic_planning",
                    "delivery_mode": "file",
                    "quantity": 1,
                    "accept_licence_terms": True,
                }
            ]
        }
    )

    product_id: uuid.UUID
    plan_id: uuid.UUID
    buyer_organization_id: uuid.UUID
    scenario: Scenario = Field(description="the declared purpose; one of the product's permitted scenarios")
    delivery_mode: DeliveryMode
    quantity: Quantity = 1
    accept_licence_terms: StrictBool = Field(False, description="the buyer accepts the product's licence terms")
    intermediary_organization_id: uuid.UUID | None = Field(None, description="a data intermediary in the trade")


class PreviewRead(ResponseBody):
    decision: Decision
    findings: list[FindingRead]
    rulebook_fingerprint: str
    amount_minor: int
    currency: str


class PaymentRequest(RequestBody):
    payment_method: (
        Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_]+$")] | None
    ) = Field(None, description="the gateway's payment method id (Stripe: pm_...); the local gateway needs none")


class DisputeRequest(RequestBody):
    reason: Reason


class CancelRequest(RequestBody):
    reason: Reason | None = None


class OrderDecision(RequestBody):
    decision: Literal["approve", "reject"]
    reason: Reason


class DisputeResolution(RequestBody):
    outcome: Literal["refund", "release"]
    reason: Reason


class OrderEventRead(ResponseBody):
    from_status: OrderStatus | None
    to_status: OrderStatus
    actor: str
    reason: str | None
    at: datetime


class PaymentRead(ResponseBody):
    gateway: str
    reference: str | None
    status: PaymentStatus
    client_secret: str | None = None


class OrderRead(ResponseBody):
    id: uuid.UUID
    status: OrderStatus
    product_id: uuid.UUID
    product_version_id: uuid.UUID
    plan_id: uuid.UUID
    buyer_organization_id: uuid.UUID
    provider_organization_id: uuid.UUID
    intermediary_organization_id: uuid.UUID | None
    scenario: str
    delivery_mode: str
    quantity: int
    amount_minor: int
    currency: str
    fee_bps: int
    decision: Decision
    flagged_rules: list[str]
    licences_reserved: int
    payment_gateway: str | None
    payment_reference: str | None
    dispute_reason: str | None
    created_at: datetime
    status_changed_at: datetime


class OrderDetail(OrderRead):
    verdict: VerdictRead
    history: list[OrderEventRead]


class OrderPlaced(OrderRead):
    verdict: VerdictBrief


class OrderPaid(ResponseBody):
    id: uuid.UUID
    status: OrderStatus
    payment: PaymentRead


class OrderPage(ResponseBody):
    items: list[OrderRead]
    total: int
    limit: int
    offset: int


# administrators' trade queries


class TradeRead(ResponseBody):
    """A trade as administrators query and export it; the same fields, in this order, are the columns
    of the CSV export and the keys of each JSON line."""

    id: uuid.UUID
    created_at: datetime
    status: OrderStatus
    decision: Decision = Field(description="the trade stage's decision")
    flagged_rules: list[str] = Field(description="rules the trade verdict failed or held the trade for review on")
    buyer: uuid.UUID = Field(description="the buyer organisation")
    provider: uuid.UUID = Field(description="the provider organisation")
    product: uuid.UUID
    version: uuid.UUID = Field(description="the listed product version traded")
    plan: uuid.UUID
    scenario: str
    delivery_mode: str
    quantity: int
    amount_minor: int
    currency: str
    fee_bps: int
    status_changed_at: datetime


class TradePage(ResponseBody):
    items: list[TradeRead]
    total: int
    limit: int
    offset: int


# settlement: an administrator's refund of a completed, settled or paid-out order


RefundPath = Literal["escrow", "reversal", "provider_debt"]


class AdminRefundRequest(RequestBody):
    reason: Reason


class OrderRefunded(OrderRead):
    refund_path: RefundPath = Field(
        description="where the money came back from: the order's escrow (completed), a reversal of its "
        "settlement (settled), or the provider's debt, repaid from its next payout (paid out)"
    )
    refund_reference: str | None = Field(description="the gateway's id of the refund; none for a free order")

"""Request and response bodies of delivery."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StringConstraints

from marketplace.catalog.schemas import Grade, Text100
from marketplace.delivery.models import LicenceStatus, ReceiptKind
from marketplace.kit.schemas import Reason, RequestBody, ResponseBody

Scalar = StrictBool | StrictInt | StrictFloat | Annotated[str, StringConstraints(max_length=1000)] | None


class DatasetRead(ResponseBody):
    product_id: uuid.UUID
    version: int
    sha256: str
    size_bytes: int
    media_type: str
    created_at: datetime


class LicenceRead(ResponseBody):
    id: uuid.UUID
    order_id: uuid.UUID
    buyer_organization_id: uuid.UUID
    provider_organization_id: uuid.UUID
    product_id: uuid.UUID
    product_version_id: uuid.UUID
    plan_id: uuid.UUID
    delivery_mode: str
    terms: dict[str, Any]
    starts_at: datetime
    ends_at: datetime | None
    status: LicenceStatus
    status_reason: str | None
    created_at: datetime


class LicencePage(ResponseBody):
    items: list[LicenceRead]
    total: int


class DeliveryRead(ResponseBody):
    """How the buyer takes delivery: a signed download link (file), or an API access key (api,
    privacy_computing; `api_key` is shown once, when it is created)."""

    mode: str
    licence_id: uuid.UUID
    sha256: str
    size_bytes: int
    expires_at: datetime | None
    download_url: str | None = None
    api_key: str | None = None
    api_key_prefix: str | None = None
    rows_url: str | None = None
    aggregate_url: str | None = None


class AccessKeyCreated(ResponseBody):
    id: uuid.UUID
    licence_id: uuid.UUID
    key: str
    prefix: str
    scopes: list[str]
    rate_limit_per_minute: int


class ReceiptRead(ResponseBody):
    id: uuid.UUID
    order_id: uuid.UUID
    licence_id: uuid.UUID
    kind: ReceiptKind
    content_sha256: str
    size_bytes: int | None
    detail: dict[str, Any]
    actor: str
    at: datetime


class ReceiptList(ResponseBody):
    items: list[ReceiptRead]
    total: int


class FilterIn(RequestBody):
    column: Text100
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "in"]
    value: Scalar | Annotated[list[Scalar], Field(min_length=1, max_length=100)]


class MetricIn(RequestBody):
    fn: Literal["count", "sum", "avg", "min", "max"]
    column: Text100 | None = None


class AggregateRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group_by": ["district"],
                    "metrics": [{"fn": "count"}, {"fn": "sum", "column": "vehicle_count"}],
                    "filters": [{"column": "district", "op": "in", "value": ["520102", "520103"]}],
                }
            ]
        }
    )

    group_by: Annotated[list[Text100], Field(max_length=5)] = []
    metrics: Annotated[list[MetricIn], Field(min_length=1, max_length=10)]
    filters: Annotated[list[FilterIn], Field(max_length=20)] = []


class MeteredCall(ResponseBody):
    call_number: int = Field(description="this call's number in the licence's month")
    charge_minor: int = Field(description="what this call was billed (0 within the plan's included calls)")


class RowsRead(MeteredCall):
    columns: list[str]
    rows: list[list[Any]]
    next_offset: int | None


class NoiseRead(ResponseBody):
    statistic: str = Field(description="what the noise is added to: count, count(column) or the clamped sum(column)")
    mechanism: Literal["discrete_laplace", "laplace"]
    epsilon: float
    sensitivity: float = Field(description="how far one row added or removed can move the statistic")
    scale: float = Field(description="the Laplace scale b = sensitivity / epsilon; the noise's deviation is b·√2")
    error_95: float = Field(description="the noise stays within ±error_95 with probability 0.95")


class MetricNoiseRead(ResponseBody):
    metric: str
    epsilon: float = Field(description="this metric's share of the answer's epsilon")
    noise: list[NoiseRead] = Field(description="one statistic; an average: its clamped sum, then its count")


class PrivacyRead(ResponseBody):
    """The differential privacy of an answer: what it spent of the licence's budget, and each metric's noise."""

    epsilon_spent: float
    budget: float
    budget_spent: float
    budget_left: float
    metrics: list[MetricNoiseRead]


class AggregateRead(MeteredCall):
    columns: list[str]
    groups: list[dict[str, Any]]
    suppressed_groups: int = Field(description="groups left out because they have fewer rows than min_group_size")
    min_group_size: int
    privacy: PrivacyRead | None = Field(
        description="under privacy computing, the answer's differential privacy; null: exact (API delivery)"
    )


class UsageRead(ResponseBody):
    licence_id: uuid.UUID
    period: str
    calls: int
    billed_minor: int
    cap_minor: int | None


class LicenceDecision(RequestBody):
    decision: Literal["reinstate", "revoke"]
    reason: Reason


class RegradeRequest(RequestBody):
    grade: Grade
    reason: Reason

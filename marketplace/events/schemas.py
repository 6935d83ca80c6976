"""Request and response shapes of the events API and of webhook endpoints."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StrictBool, StringConstraints

from marketplace.events.models import DeliveryStatus
from marketplace.kit.outbound import MAX_URL_LENGTH
from marketplace.kit.schemas import NO_NUL_PATTERN, RequestBody, ResponseBody

# An event type (`order.paid`) or a prefix ending in a dot (`order.`), as the event feed's filter.
EVENT_TYPE_FILTER_PATTERN = r"^[a-z_]+\.([a-z_]+)?$"
EventTypeFilter = Annotated[str, StringConstraints(max_length=64, pattern=EVENT_TYPE_FILTER_PATTERN)]
EventTypeFilters = Annotated[list[EventTypeFilter], Field(min_length=1, max_length=50)]
# Checked further (scheme, host, the addresses it resolves to) before it is saved.
WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH, pattern=NO_NUL_PATTERN)]


class EventRead(ResponseBody):
    id: uuid.UUID
    type: str
    subject_type: str
    subject_id: str
    organization_ids: list[uuid.UUID]
    payload: dict[str, Any]
    created_at: datetime


class EventPage(ResponseBody):
    items: Sequence[EventRead]
    # Pass it as `after` to read on from the last event of this page (the `after` given, when it is empty).
    next_cursor: str


class WebhookEndpointCreate(RequestBody):
    organization_id: uuid.UUID
    url: WebhookUrl
    event_types: EventTypeFilters
    enabled: StrictBool = True


class WebhookEndpointUpdate(RequestBody):
    """What to change; a field left out stays, none may be set to null."""

    url: WebhookUrl | None = None
    event_types: EventTypeFilters | None = None
    enabled: StrictBool | None = None


class WebhookEndpointRead(ResponseBody):
    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str = Field(description="the signing secret (`whsec_` + base64), shown only in this response")


class WebhookSecretRotated(ResponseBody):
    endpoint_id: uuid.UUID
    secret: str = Field(description="the new signing secret, shown only in this response")
    previous_secret_expires_at: datetime = Field(
        description="until then deliveries carry a signature by the previous secret too"
    )


class WebhookDeliveryRead(ResponseBody):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID = Field(description="the `webhook-id` header of every attempt")
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    created_at: datetime


class WebhookAttemptRead(ResponseBody):
    id: uuid.UUID
    attempted_at: datetime
    status_code: int | None = Field(description="the endpoint's answer; null when none came (refused, timed out)")
    duration_ms: int
    succeeded: bool
    error: str | None
    response_snippet: str = Field(description="the start of the answer's body")

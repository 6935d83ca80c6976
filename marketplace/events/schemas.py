"""Response shapes of the events API."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from marketplace.kit.schemas import ResponseBody


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

"""Query parameter types the controllers share."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

from marketplace.kit import clock
from marketplace.kit.schemas import NO_NUL_PATTERN

Text = Annotated[str | None, QueryParameter(max_length=80, pattern=NO_NUL_PATTERN)]
# The largest integer a JSON number holds exactly (and a database integer too): numbers past it (a tree size, an
# audit entry's id) are refused before any query.
MAX_EXACT_INTEGER = 2**53 - 1
# Not `datetime`: Litestar would also take a number (a Unix timestamp) for one.
Moment = Annotated[
    str | None,
    QueryParameter(format="date-time", description="RFC 3339, e.g. 2025-01-31T08:00:00Z; UTC if no offset"),
]
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_moment(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    if _RFC3339.fullmatch(value):
        try:
            return clock.as_utc(datetime.fromisoformat(value.upper()))
        except ValueError:
            pass
    raise ValidationException(
        detail=f"{name} is not an RFC 3339 date-time",
        extra=[{"key": name, "message": "expected an RFC 3339 date-time", "source": "query"}],
    )

"""Administrators read and verify the audit trail."""

import re
from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

from marketplace.accounts.guards import ADMIN_ONLY, SECURITY, Caller
from marketplace.audit.schemas import AuditEntryRead, ChainVerification
from marketplace.audit.service import AuditService
from marketplace.db import DbSession
from marketplace.errors import problem_responses
from marketplace.kit import clock
from marketplace.kit.pagination import PAGED, Page, Paging
from marketplace.kit.schemas import NO_NUL_PATTERN

Text = Annotated[str | None, QueryParameter(max_length=80, pattern=NO_NUL_PATTERN)]
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


class AuditController(Controller):
    path = "/api/v1/admin/audit"
    tags = ["audit"]
    dependencies = {**ADMIN_ONLY, **PAGED}
    security = SECURITY

    @get("/", responses=problem_responses(401, 403))
    async def search(
        self,
        admin: Caller,
        db_session: DbSession,
        page: Paging,
        object_type: Text = None,
        object_id: Text = None,
        actor: Text = None,
        action: Text = None,
        since: Moment = None,
        until: Moment = None,
    ) -> Page[AuditEntryRead]:
        """Audit entries, newest first, filtered by object, actor, action and period."""
        rows, total = await AuditService(db_session).search(
            object_type=object_type,
            object_id=object_id,
            actor=actor,
            action=action,
            since=parse_moment("since", since),
            until=parse_moment("until", until),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[AuditEntryRead.model_validate(r) for r in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )

    @get("/verify", responses=problem_responses(401, 403))
    async def verify(self, admin: Caller, db_session: DbSession) -> ChainVerification:
        """Recompute the whole chain and name the first broken entry, if any."""
        return ChainVerification.model_validate(await AuditService(db_session).verify())

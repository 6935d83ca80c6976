"""Administrators read and verify the audit trail."""

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from marketplace.accounts.guards import ADMIN_ONLY, SECURITY, Caller
from marketplace.audit.schemas import AuditEntryRead, ChainVerification
from marketplace.audit.service import AuditService
from marketplace.db import DbSession
from marketplace.errors import problem_responses
from marketplace.kit import clock
from marketplace.kit.pagination import PAGED, Page, Paging

Text = Annotated[str | None, QueryParameter(max_length=80)]


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
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> Page[AuditEntryRead]:
        """Audit entries, newest first, filtered by object, actor, action and period."""
        rows, total = await AuditService(db_session).search(
            object_type=object_type,
            object_id=object_id,
            actor=actor,
            action=action,
            since=clock.as_utc(since) if since else None,
            until=clock.as_utc(until) if until else None,
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

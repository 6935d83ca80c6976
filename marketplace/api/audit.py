"""Administrators read and verify the audit trail."""

from litestar import Controller, get
from litestar.di import NamedDependency

from marketplace.audit.schemas import AuditEntryRead, ChainVerification
from marketplace.audit.service import AuditService
from marketplace.web.pagination import PAGED, Page, Paging
from marketplace.web.principal import ADMIN_ONLY, Access, Caller
from marketplace.web.problems import problem_responses
from marketplace.web.query import Moment, Text, parse_moment


class AuditController(Controller):
    path = "/api/v1/admin/audit"
    tags = ["audit"]
    dependencies = {**ADMIN_ONLY, **PAGED}

    @get("/", responses=problem_responses(401, 403), opt={"scope": Access.ADMIN})
    async def search(
        self,
        admin: Caller,
        audit: NamedDependency[AuditService],
        page: Paging,
        object_type: Text = None,
        object_id: Text = None,
        actor: Text = None,
        action: Text = None,
        since: Moment = None,
        until: Moment = None,
    ) -> Page[AuditEntryRead]:
        """Audit entries, newest first, filtered by object, actor, action and period."""
        rows, total = await audit.search(
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

    @get("/verify", responses=problem_responses(401, 403), opt={"scope": Access.ADMIN})
    async def verify(self, admin: Caller, audit: NamedDependency[AuditService]) -> ChainVerification:
        """Recompute the whole chain and name the first broken entry, if any."""
        return ChainVerification.model_validate(await audit.verify())

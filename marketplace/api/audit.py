"""Administrators read and verify the audit trail."""

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter

from marketplace.audit.schemas import AuditEntryRead, EntryProofRead, LogVerification
from marketplace.audit.service import AuditService
from marketplace.audit.transparency import TransparencyLog
from marketplace.errors import NotFound
from marketplace.kit.i18n import Message
from marketplace.web.pagination import PAGED, Page, Paging
from marketplace.web.principal import ADMIN_ONLY, Access, Caller
from marketplace.web.problems import problem_responses
from marketplace.web.query import MAX_EXACT_INTEGER, Moment, Text, parse_moment


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
    async def verify(self, admin: Caller, transparency: NamedDependency[TransparencyLog]) -> LogVerification:
        """Recompute the transparency log's tree from every stored entry, check every signed tree head against it,
        and name the first leaf where the stored log departs from what was signed, if any."""
        return LogVerification.model_validate(await transparency.verify())

    @get("/{entry_id:int}/proof", responses=problem_responses(401, 403, 404), opt={"scope": Access.ADMIN})
    async def proof(
        self,
        admin: Caller,
        transparency: NamedDependency[TransparencyLog],
        entry_id: Annotated[int, PathParameter(ge=0, le=MAX_EXACT_INTEGER)],
    ) -> EntryProofRead:
        """An entry as its leaf hashes it, with its inclusion proof against the latest signed tree head: what a
        party is given to check, offline, that the exchange logged the act. 404 until the sequencer has made
        it a leaf."""
        proof = await transparency.entry_proof(entry_id)
        if proof is None:
            raise NotFound(Message("transparency.entry-not-in-tree", "no such entry in the tree yet"))
        return EntryProofRead.model_validate(proof)

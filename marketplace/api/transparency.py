"""The transparency log's public face: signed tree heads and the proofs anyone checks against them (RFC 9162's
structure). Hashes and sizes only: what the entries say stays behind the administrators' audit API."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from marketplace.audit.models import AuditTreeHead
from marketplace.audit.schemas import ConsistencyProofRead, InclusionProofRead, TreeHeadRead
from marketplace.audit.transparency import TransparencyLog
from marketplace.errors import NotFound
from marketplace.kit.i18n import Message
from marketplace.web.pagination import PAGED, Page, Paging
from marketplace.web.principal import Access
from marketplace.web.problems import problem_responses
from marketplace.web.query import MAX_EXACT_INTEGER

TreeSize = Annotated[int, QueryParameter(ge=1, le=MAX_EXACT_INTEGER, description="a number of leaves")]


def head_read(head: AuditTreeHead) -> TreeHeadRead:
    return TreeHeadRead(
        tree_size=head.tree_size, root_hash=head.root_hash, timestamp=head.published_at, signed=head.signed
    )


class TransparencyController(Controller):
    path = "/api/v1/transparency"
    tags = ["transparency"]
    dependencies = PAGED

    @get("/tree-head", responses=problem_responses(404), opt={"scope": Access.PUBLIC})
    async def tree_head(self, transparency: NamedDependency[TransparencyLog]) -> TreeHeadRead:
        """The latest signed tree head; its signature verifies with the notary's key of /.well-known/jwks.json.
        404 before the first head."""
        head = await transparency.latest_head()
        if head is None:
            raise NotFound(Message("transparency.no-head", "no tree head is published yet"))
        return head_read(head)

    @get("/tree-heads", responses=problem_responses(), opt={"scope": Access.PUBLIC})
    async def tree_heads(self, transparency: NamedDependency[TransparencyLog], page: Paging) -> Page[TreeHeadRead]:
        """Every signed tree head ever published, largest first."""
        heads, total = await transparency.heads(limit=page.limit, offset=page.offset)
        return Page(items=[head_read(head) for head in heads], total=total, limit=page.limit, offset=page.offset)

    @get(
        "/entries/{leaf_index:int}/inclusion",
        responses=problem_responses(404),
        opt={"scope": Access.PUBLIC},
    )
    async def inclusion(
        self,
        transparency: NamedDependency[TransparencyLog],
        leaf_index: Annotated[int, PathParameter(ge=0, le=MAX_EXACT_INTEGER)],
        tree_size: TreeSize,
    ) -> InclusionProofRead:
        """The inclusion proof of a leaf in the tree of `tree_size` leaves (RFC 9162 2.1.3): with the leaf's hash
        it recomputes that tree's root. 404 for a size the log has not reached or a leaf past it."""
        proof = await transparency.inclusion(leaf_index, tree_size)
        return InclusionProofRead(leaf_index=leaf_index, tree_size=tree_size, inclusion=[item.hex() for item in proof])

    @get("/consistency", responses=problem_responses(404), opt={"scope": Access.PUBLIC})
    async def consistency(
        self, transparency: NamedDependency[TransparencyLog], first: TreeSize, second: TreeSize
    ) -> ConsistencyProofRead:
        """The consistency proof between the trees of `first` and `second` leaves (RFC 9162 2.1.4): the larger
        tree holds the smaller one unchanged. 404 for first > second or a size the log has not reached."""
        proof = await transparency.consistency(first, second)
        return ConsistencyProofRead(first=first, second=second, consistency=[item.hex() for item in proof])

"""Every query on the audit tables: entries, the tree's subtrees, the signed tree heads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    text,
    update,
)
from sqlalchemy import (
    Sequence as DatabaseSequence,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.audit.leaves import body, leaf_text
from marketplace.audit.models import AuditEntry, AuditNode, AuditTreeHead
from marketplace.db import table_of

_ENTRIES = table_of(AuditEntry)
_NODES = table_of(AuditNode)
_HEADS = table_of(AuditTreeHead)
# PostgreSQL numbers entries from a sequence: taking a number locks nothing a transaction keeps.
ENTRY_IDS = DatabaseSequence("audit_entry_id_seq", metadata=_ENTRIES.metadata)
# One sequencer at a time on PostgreSQL: a transaction-scoped advisory lock only sequencers take ("audit" + 1).
SEQUENCER_LOCK = 0x6175646974_01

_ENTRY_FIELDS = ("at", "actor", "action", "object_type", "object_id", "payload")


def _append(next_id: Any) -> Any:
    """An append in one statement: the entry is numbered by `next_id` as it is inserted, and its leaf text is the
    text Python canonicalised around the number (`leaves.around_id`)."""
    numbered = core_select(next_id.label("id")).subquery("numbered")
    leaf = bindparam("before_id", type_=Text) + cast(numbered.c.id, Text) + bindparam("after_id", type_=Text)
    values = core_select(numbered.c.id, *(bindparam(name, type_=_ENTRIES.c[name].type) for name in _ENTRY_FIELDS), leaf)
    return insert(_ENTRIES).from_select(["id", *_ENTRY_FIELDS, "leaf"], values).returning(_ENTRIES.c.id)


# SQLite has one writer at a time: the next number is the largest so far plus one.
_APPEND = {
    "postgresql": _append(ENTRY_IDS.next_value()),
    "sqlite": _append(core_select(func.coalesce(func.max(_ENTRIES.c.id), 0) + 1).scalar_subquery()),
}
_PENDING = (
    core_select(_ENTRIES.c.id, _ENTRIES.c.leaf)
    .where(_ENTRIES.c.leaf_index.is_(None))
    .order_by(_ENTRIES.c.id)
    .limit(bindparam("batch"))
)
_ASSIGN_ONE = update(_ENTRIES).where(_ENTRIES.c.id == bindparam("entry_id")).values(leaf_index=bindparam("new_index"))
_ASSIGN_ALL = text(
    "UPDATE audit_entry SET leaf_index = assigned.leaf_index"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:indexes AS bigint[])) AS assigned(id, leaf_index)"
    " WHERE audit_entry.id = assigned.id"
)
_INSERT_NODES = text(
    "INSERT INTO audit_node (level, position, hash)"
    " SELECT * FROM unnest(CAST(:levels AS smallint[]), CAST(:positions AS bigint[]), CAST(:hashes AS bytea[]))"
).bindparams(
    bindparam("levels", type_=ARRAY(Integer)),
    bindparam("positions", type_=ARRAY(BigInteger)),
    bindparam("hashes", type_=ARRAY(LargeBinary)),
)
# The leaf's `at` is Python's isoformat of the UTC time, to the microsecond.
_FIRST_UNLIKE = text(
    "SELECT leaf_index, id FROM audit_entry WHERE leaf_index IS NOT NULL AND leaf::jsonb <> jsonb_build_object("
    "'action', action, 'actor', actor,"
    " 'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), 'id', id,"
    " 'object_id', object_id, 'object_type', object_type, 'payload', payload)"
    " ORDER BY leaf_index LIMIT 1"
)
_TREE_SIZE = core_select(func.coalesce(func.max(_HEADS.c.tree_size), 0))


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def append(self, values: dict[str, Any], before_id: str, after_id: str) -> int:
        """Insert an entry, pending; `values` are its columns but the id and the leaf. Returns its id."""
        parameters = {**values, "before_id": before_id, "after_id": after_id}
        return int((await self.session.execute(_APPEND[self.dialect], parameters)).scalar_one())

    # The sequencer

    async def lock_sequencer(self) -> None:
        """Wait for the sequencer's turn, until the transaction ends (SQLite: its single writer is the turn)."""
        if self.dialect == "postgresql":
            await self.session.execute(select(func.pg_advisory_xact_lock(SEQUENCER_LOCK)))

    async def tree_size(self) -> int:
        return int((await self.session.execute(_TREE_SIZE)).scalar_one())

    async def pending(self, batch: int) -> list[tuple[int, str]]:
        rows = await self.session.execute(_PENDING, {"batch": batch})
        return [(int(entry_id), str(leaf)) for entry_id, leaf in rows]

    async def assign_leaves(self, ids: Sequence[int], first_index: int) -> None:
        """The entries `ids` become leaves first_index, first_index + 1, ... in that order."""
        indexes = range(first_index, first_index + len(ids))
        if self.dialect == "postgresql":
            await self.session.execute(_ASSIGN_ALL, {"ids": list(ids), "indexes": list(indexes)})
            return
        rows = [{"entry_id": entry_id, "new_index": index} for entry_id, index in zip(ids, indexes, strict=True)]
        await self.session.execute(_ASSIGN_ONE, rows)

    async def add_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if self.dialect == "postgresql":
            levels, positions, hashes = (list(column) for column in zip(*nodes, strict=True))
            await self.session.execute(_INSERT_NODES, {"levels": levels, "positions": positions, "hashes": hashes})
            return
        rows = [{"level": level, "position": position, "hash": hash} for level, position, hash in nodes]
        await self.session.execute(insert(_NODES), rows)

    async def subtrees(self, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored hashes of the perfect subtrees (level, position) asked for (one statement)."""
        if not wanted:
            return {}
        rows = await self.session.execute(
            core_select(_NODES.c.level, _NODES.c.position, _NODES.c.hash).where(
                or_(*(and_(_NODES.c.level == level, _NODES.c.position == position) for level, position in wanted))
            )
        )
        return {(int(level), int(position)): bytes(hash) for level, position, hash in rows}

    async def add_head(self, head: AuditTreeHead) -> None:
        await self.session.execute(insert(_HEADS), head.model_dump())

    # Reads

    async def latest_head(self) -> AuditTreeHead | None:
        query = select(AuditTreeHead).order_by(col(AuditTreeHead.tree_size).desc()).limit(1)
        return (await self.session.scalars(query)).first()

    async def head_at(self, tree_size: int) -> AuditTreeHead | None:
        return await self.session.get(AuditTreeHead, tree_size)

    async def heads(self, *, limit: int, offset: int) -> tuple[Sequence[AuditTreeHead], int]:
        total = (await self.session.execute(select(func.count()).select_from(AuditTreeHead))).scalar_one()
        query = select(AuditTreeHead).order_by(col(AuditTreeHead.tree_size).desc()).limit(limit).offset(offset)
        return (await self.session.scalars(query)).all(), int(total)

    async def all_heads(self) -> Sequence[AuditTreeHead]:
        return (await self.session.scalars(select(AuditTreeHead).order_by(col(AuditTreeHead.tree_size)))).all()

    async def entry(self, entry_id: int) -> AuditEntry | None:
        return await self.session.get(AuditEntry, entry_id)

    async def stream_leaves(self, batch: int = 10_000) -> AsyncIterator[Sequence[Any]]:
        """The integrated entries (leaf index, id, leaf text, the leaf hash the tree stored) in leaf order, in
        batches of rows."""
        query = (
            core_select(_ENTRIES.c.leaf_index, _ENTRIES.c.id, _ENTRIES.c.leaf, _NODES.c.hash)
            .outerjoin(_NODES, and_(_NODES.c.level == 0, _NODES.c.position == _ENTRIES.c.leaf_index))
            .where(_ENTRIES.c.leaf_index.is_not(None))
            .order_by(_ENTRIES.c.leaf_index)
        )
        result = await self.session.stream(query.execution_options(yield_per=batch))
        async for rows in result.partitions(batch):
            yield rows

    async def first_leaf_unlike_its_columns(self) -> tuple[int, int] | None:
        """(leaf index, id) of the first integrated entry whose columns are not what its leaf text says. PostgreSQL
        compares them as JSON, in the database; SQLite's rows are compared here, as the leaf text is made."""
        if self.dialect == "postgresql":
            row = (await self.session.execute(_FIRST_UNLIKE)).first()
            return None if row is None else (int(row[0]), int(row[1]))
        query = select(AuditEntry).where(col(AuditEntry.leaf_index).is_not(None)).order_by(col(AuditEntry.leaf_index))
        async for entry in await self.session.stream_scalars(query.execution_options(yield_per=1_000)):
            fields = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
            if leaf_text(body(id=entry.id, **fields)) != entry.leaf:
                return int(entry.leaf_index or 0), entry.id
        return None

    async def search(
        self,
        *,
        object_type: str | None,
        object_id: str | None,
        actor: str | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[AuditEntry], int]:
        conditions = []
        if object_type:
            conditions.append(col(AuditEntry.object_type) == object_type)
        if object_id:
            conditions.append(col(AuditEntry.object_id) == object_id)
        if actor:
            conditions.append(col(AuditEntry.actor) == actor)
        if action:
            conditions.append(col(AuditEntry.action) == action)
        if since:
            conditions.append(col(AuditEntry.at) >= since)
        if until:
            conditions.append(col(AuditEntry.at) < until)
        query = select(AuditEntry).where(*conditions)
        total = (await self.session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = (await self.session.scalars(query.order_by(col(AuditEntry.id).desc()).limit(limit).offset(offset))).all()
        return rows, int(total)

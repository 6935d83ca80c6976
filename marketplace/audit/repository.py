"""Every query on the audit tables: entries, the tree's subtrees, the signed tree heads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    text,
    update,
)
from sqlalchemy import (
    Sequence as DatabaseSequence,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

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


def _append(next_id: Any, prefix: str = "") -> Any:
    """An append in one statement: the entry is numbered by `next_id` as it is inserted, and its leaf text is the
    text Python canonicalised around the number (`leaves.around_id`). Its parameters are the entry's fields,
    `before_id` and `after_id` (`AuditService.entry`), each named after `prefix`."""
    numbered = core_select(next_id.label("id")).subquery("numbered")
    before, after = bindparam(f"{prefix}before_id", type_=Text), bindparam(f"{prefix}after_id", type_=Text)
    fields = (bindparam(f"{prefix}{name}", type_=_ENTRIES.c[name].type) for name in _ENTRY_FIELDS)
    values = core_select(numbered.c.id, *fields, before + cast(numbered.c.id, Text) + after)
    return insert(_ENTRIES).from_select(["id", *_ENTRY_FIELDS, "leaf"], values).returning(_ENTRIES.c.id)


def appended_entry(prefix: str) -> Any:
    """An entry's append on PostgreSQL with its parameters named after `prefix`: for a statement that appends
    it beside writes of its own (an order's placement), one round trip for all of them."""
    return _append(ENTRY_IDS.next_value(), prefix)


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


def _leaf_of_columns(quote: Any, at_text: Any) -> Any:
    """The leaf text the entry's columns make (`leaves.leaf_text`), in SQL: `quote` writes a text as a JSON
    string as Python's json module does, `at_text` the time as Python's isoformat; the payload is stored
    canonical already."""
    e = _ENTRIES.c
    return (
        literal('{"action":')
        + quote(e.action)
        + literal(',"actor":')
        + quote(e.actor)
        + literal(',"at":"')
        + at_text
        + literal('","id":')
        + cast(e.id, Text)
        + literal(',"object_id":')
        + quote(e.object_id)
        + literal(',"object_type":')
        + quote(e.object_type)
        + literal(',"payload":')
        + cast(e.payload, Text)
        + literal("}")
    )


def _postgresql_leaf_of_columns() -> Any:
    """The leaf text of the columns on PostgreSQL, where to_json costs more than the rest of the text together: the
    texts that need no escape (all of an entry's, nearly always: ids, codes, dotted names) are quoted as they are,
    which to_json tells by one call over their concatenation (an escape lengthens it)."""
    e = _ENTRIES.c
    at_text = func.to_char(func.timezone("UTC", e.at), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"', type_=Text)
    texts = e.action + e.actor + e.object_id + e.object_type
    plain = func.octet_length(cast(func.to_json(texts), Text)) == func.octet_length(texts) + 2
    return case(
        (plain, _leaf_of_columns(lambda value: literal('"') + value + literal('"'), at_text)),
        else_=_leaf_of_columns(lambda value: cast(func.to_json(value), Text), at_text),
    )


_LEAF_OF_COLUMNS = {
    "postgresql": _postgresql_leaf_of_columns(),
    # SQLite keeps a UTC time as "2026-01-01 00:00:00.000000"
    "sqlite": _leaf_of_columns(
        lambda value: func.json_quote(value, type_=Text),
        func.replace(cast(_ENTRIES.c.at, Text), " ", "T", type_=Text) + literal("+00:00"),
    ),
}
_FIRST_UNLIKE = {
    dialect: core_select(_ENTRIES.c.leaf_index, _ENTRIES.c.id).where(
        _ENTRIES.c.leaf_index
        == core_select(func.min(_ENTRIES.c.leaf_index))
        .where(_ENTRIES.c.leaf_index.is_not(None), _ENTRIES.c.leaf != leaf)
        .scalar_subquery()
    )
    for dialect, leaf in _LEAF_OF_COLUMNS.items()
}
_LEAVES = (
    core_select(_ENTRIES.c.leaf_index, _ENTRIES.c.id, cast(_ENTRIES.c.leaf, LargeBinary))
    .where(_ENTRIES.c.leaf_index >= bindparam("start"), _ENTRIES.c.leaf_index < bindparam("end"))
    .order_by(_ENTRIES.c.leaf_index)
)
_STORED_LEAVES = (
    core_select(_NODES.c.hash)
    .where(_NODES.c.level == 0, _NODES.c.position >= bindparam("start"), _NODES.c.position < bindparam("end"))
    .order_by(_NODES.c.position)
)
# The leaf texts as the bytes they hash (UTF-8): no decoding into text and encoding back.
_LEAVES_BY_DRIVER = (
    "SELECT leaf_index, id, convert_to(leaf, 'UTF8') FROM audit_entry"
    " WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index"
)
_STORED_LEAVES_BY_DRIVER = (
    "SELECT string_agg(hash, ''::bytea ORDER BY position) FROM audit_node"
    " WHERE level = 0 AND position >= $1 AND position < $2"
)
_LAST_LEAF = core_select(func.max(_ENTRIES.c.leaf_index))
_TREE_SIZE = core_select(func.coalesce(func.max(_HEADS.c.tree_size), 0))


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def append(self, entry: dict[str, Any]) -> int:
        """Insert an entry, pending; `entry` is its parameters (`AuditService.entry`). Returns its id."""
        return int((await self.session.execute(_APPEND[self.dialect], entry)).scalar_one())

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

    async def leaves(self, start: int, end: int) -> tuple[Sequence[Any], bytes]:
        """The entries stored at leaf indexes [start, end) as (leaf index, id, leaf text in UTF-8) rows in leaf
        order, and the leaf hashes the tree stored for those indexes, joined in order. Verification reads every
        leaf this way: on PostgreSQL through the driver itself, whose rows cost a fraction of SQLAlchemy's."""
        if self.dialect == "postgresql":
            driver = (await (await self.session.connection()).get_raw_connection()).driver_connection
            assert driver is not None
            rows = await driver.fetch(_LEAVES_BY_DRIVER, start, end)
            return rows, await driver.fetchval(_STORED_LEAVES_BY_DRIVER, start, end) or b""
        bounds = {"start": start, "end": end}
        rows = (await self.session.execute(_LEAVES, bounds)).all()
        return rows, b"".join((await self.session.execute(_STORED_LEAVES, bounds)).scalars().all())

    async def last_leaf(self) -> int | None:
        value = (await self.session.execute(_LAST_LEAF)).scalar_one_or_none()
        return None if value is None else int(value)

    async def first_leaf_unlike_its_columns(self) -> tuple[int, int] | None:
        """(leaf index, id) of the first leaf whose columns are not what its leaf text says: compared as text, in
        the database, on a connection of its own when the session has an engine (so it runs beside `leaves`)."""
        bind = self.session.bind
        if isinstance(bind, AsyncEngine):
            async with bind.connect() as connection:
                found = (await connection.execute(_FIRST_UNLIKE[self.dialect])).one_or_none()
        else:
            found = (await self.session.execute(_FIRST_UNLIKE[self.dialect])).one_or_none()
        return None if found is None else (int(found[0]), int(found[1]))

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

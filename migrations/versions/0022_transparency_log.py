"""transparency log: the audit hash chain becomes a Merkle tree's leaves (RFC 9162's structure)

Appends no longer lock a head row: an entry is inserted pending (`leaf_index` NULL) under an id taken at insert,
with `leaf`, the text its leaf hashes (the canonical JSON of its body with its id); the sequencer makes pending
entries leaves in id order and signs tree heads. Upgrade turns the chain's entries into pending entries in their
chain order (their sequence number becomes their id) and drops the head row and the chain's hashes; the first
sequencer run makes them the tree's first leaves. Downgrade chains every entry again, leaves in leaf order then
the pending ones in id order, numbered 1..n (the tree, its subtrees and its heads are dropped).

The payload is stored as the text of its canonical JSON (it was JSON, JSONB on PostgreSQL), so that the database
can compare an entry's columns with its leaf text as text. Both directions copy the entries into a new table and
swap it in: on SQLite a changed primary key rebuilds the table anyway, and the leaf text and the chain's hashes are
computed here, in Python, in batches.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 21:00:00.000000
"""

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import marketplace.kit.sqltypes

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BATCH = 5_000
GENESIS_HASH = "0" * 64
_FIELDS = ("at", "actor", "action", "object_type", "object_id", "payload")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _body(number_name: str, number: int, values: dict[str, Any]) -> dict[str, Any]:
    """The entry's body as both structures hash it: the leaf with its id, the chain with its seq."""
    return {**values, number_name: number, "at": values["at"].isoformat(timespec="microseconds")}


def _entry_columns(payload: Any) -> list[sa.Column[Any]]:
    return [
        sa.Column("at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("object_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("object_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("payload", payload, nullable=False),
    ]


def _copy(source: str, payload: Any, key: str, kept: Any, target: sa.Table, convert: Any) -> None:
    """The rows of `source` that `kept(table)` keeps, in `key` order, into `target`, each `convert`ed with its key,
    in batches."""
    connection = op.get_bind()
    names = {"actor", "action", "object_type", "object_id", key, "leaf_index"}
    read = sa.table(
        source,
        sa.column("at", marketplace.kit.sqltypes.UTCDateTime(timezone=True)),
        sa.column("payload", payload),
        *(sa.column(name) for name in sorted(names)),
    )
    query = (
        sa.select(*(read.c[name] for name in (*_FIELDS, key)))
        .where(kept(read), read.c[key] > sa.bindparam("after"))
        .order_by(read.c[key])
        .limit(BATCH)
    )
    after = -1
    while rows := connection.execute(query, {"after": after}).mappings().all():
        connection.execute(target.insert(), [convert({name: row[name] for name in _FIELDS}, row[key]) for row in rows])
        after = rows[-1][key]


def upgrade() -> None:
    op.create_table(
        "audit_node",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "position", name=op.f("pk_audit_node")),
    )
    op.create_table(
        "audit_tree_head",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("published_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_tree_head")),
    )
    leaves = op.create_table(
        "audit_entry_leaves",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        *_entry_columns(sa.Text()),
        sa.Column("leaf", sa.Text(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=_primary_key_name("audit_entry_leaves")),
        sa.UniqueConstraint("leaf_index", name=op.f("uq_audit_entry_leaf_index")),
    )

    def as_leaf(values: dict[str, Any], seq: int) -> dict[str, Any]:
        leaf = _canonical(_body("id", seq, values))
        return {**values, "id": seq, "payload": _canonical(values["payload"]), "leaf": leaf}

    _copy("audit_entry", JSON, "seq", lambda read: sa.true(), leaves, as_leaf)
    op.drop_table("audit_head")
    _drop_entry_table()
    op.rename_table("audit_entry_leaves", "audit_entry")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_entry RENAME CONSTRAINT pk_audit_entry_leaves TO pk_audit_entry")
        op.execute("CREATE SEQUENCE audit_entry_id_seq")
        op.execute("SELECT setval('audit_entry_id_seq', (SELECT max(id) FROM audit_entry)) FROM audit_entry LIMIT 1")
    _create_entry_indexes("id")
    op.create_index(
        "ix_audit_entry_pending",
        "audit_entry",
        ["id"],
        unique=False,
        postgresql_where=sa.text("leaf_index IS NULL"),
        sqlite_where=sa.text("leaf_index IS NULL"),
    )


def _primary_key_name(table: str) -> str:
    """The new table's primary key: named as the table it replaces will be (SQLite), or for now by its own
    name and renamed once the old one is dropped (PostgreSQL, where the names share the schema)."""
    return f"pk_{table}" if op.get_bind().dialect.name == "postgresql" else "pk_audit_entry"


def _drop_entry_table() -> None:
    for name in ("ix_audit_entry_actor", "ix_audit_entry_at", "ix_audit_entry_object", "ix_audit_entry_pending"):
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_table("audit_entry")


def _create_entry_indexes(number: str) -> None:
    op.create_index("ix_audit_entry_actor", "audit_entry", ["actor"], unique=False)
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"], unique=False)
    op.create_index("ix_audit_entry_object", "audit_entry", ["object_type", "object_id", number], unique=False)


def downgrade() -> None:
    chain = op.create_table(
        "audit_entry_chain",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        *_entry_columns(JSON),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=_primary_key_name("audit_entry_chain")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_entry_hash")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_entry_prev_hash")),
    )
    head: dict[str, Any] = {"seq": 0, "hash": GENESIS_HASH}

    def as_link(stored: dict[str, Any], _: int) -> dict[str, Any]:
        values = {**stored, "payload": json.loads(stored["payload"])}
        seq = int(head["seq"]) + 1
        text = f"{head['hash']}{_canonical(_body('seq', seq, values))}"
        link = {**values, "seq": seq, "prev_hash": head["hash"], "hash": hashlib.sha256(text.encode()).hexdigest()}
        head.update(seq=seq, hash=link["hash"])
        return link

    # the leaves first, in leaf order, then the pending entries in id order
    _copy("audit_entry", sa.Text(), "leaf_index", lambda read: read.c.leaf_index.is_not(None), chain, as_link)
    _copy("audit_entry", sa.Text(), "id", lambda read: read.c.leaf_index.is_(None), chain, as_link)
    _drop_entry_table()
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE audit_entry_id_seq")
    op.drop_table("audit_tree_head")
    op.drop_table("audit_node")
    op.rename_table("audit_entry_chain", "audit_entry")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_entry RENAME CONSTRAINT pk_audit_entry_chain TO pk_audit_entry")
    _create_entry_indexes("seq")
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(audit_head, [{"id": 1, **head}])

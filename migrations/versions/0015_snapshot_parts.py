"""snapshot parts: the facts verdicts share, stored once by content hash

Every verdict carried the whole snapshot it judged, the same organisation and product facts copied on every
order. An organisation's facts (applicant, provider, buyer, intermediary), a product version's facts and a plan
now live once in `snapshot_part`, keyed by the sha256 of their canonical JSON; a verdict keeps the rest of its
snapshot inline (`snapshot`) and names its parts by role (`parts`, role -> digest). Upgrade splits every stored
snapshot and dedupes its parts; downgrade puts every snapshot back together.

`parts` defaults to {} (nothing stored apart): SQLite adds such a column in place, where rebuilding `verdict`
would drop a table that trade_order refers to.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-11 10:00:00
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

# The one byte form the project hashes: the digests written here are the ones the service computes.
from marketplace.kit.canonical import canonical_json

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# The roles stored as parts at this revision, and their kinds (marketplace/compliance/parts.py).
KINDS = {
    "organization": "organization",
    "provider": "organization",
    "buyer": "organization",
    "intermediary": "organization",
    "product": "product",
    "plan": "plan",
}
# Verdicts rewritten per round trip: memory stays bounded whatever the table's size.
BATCH = 500

verdict = sa.table("verdict", sa.column("id", sa.Uuid()), sa.column("snapshot", JSON), sa.column("parts", JSON))
part = sa.table(
    "snapshot_part", sa.column("digest", sa.String()), sa.column("kind", sa.String()), sa.column("document", JSON)
)
# Executed with rows keyed `key` (the verdict's id) and the columns to set.
_REWRITE = verdict.update().where(verdict.c.id == sa.bindparam("key"))


def upgrade() -> None:
    op.create_table(
        "snapshot_part",
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_snapshot_part")),
    )
    with op.batch_alter_table("verdict", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parts", JSON, nullable=False, server_default="{}"))
    for rows in _batches(sa.select(verdict.c.id, verdict.c.snapshot)):
        _split_batch(rows)


def downgrade() -> None:
    for rows in _batches(sa.select(verdict.c.id, verdict.c.snapshot, verdict.c.parts)):
        _assemble_batch(rows)
    # In place on SQLite too (3.35 and later): a batch rebuild would drop a table trade_order refers to.
    op.drop_column("verdict", "parts")
    op.drop_table("snapshot_part")


def _batches(query: sa.Select[Any]) -> Any:
    """The verdicts `query` reads, BATCH at a time in id order."""
    bind = op.get_bind()
    last = None
    while True:
        page = query.order_by(verdict.c.id).limit(BATCH)
        rows = bind.execute(page if last is None else page.where(verdict.c.id > last)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _split_batch(rows: Sequence[sa.Row[Any]]) -> None:
    parts: dict[str, dict[str, Any]] = {}
    rewritten = []
    for row in rows:
        inline: dict[str, Any] = {}
        digests: dict[str, str] = {}
        for role, value in row.snapshot.items():
            if role not in KINDS or value is None:
                inline[role] = value
                continue
            digest = hashlib.sha256(canonical_json(value).encode()).hexdigest()
            parts[digest] = {"digest": digest, "kind": KINDS[role], "document": value}
            digests[role] = digest
        rewritten.append({"key": row.id, "snapshot": inline, "parts": digests})
    bind = op.get_bind()
    if parts:
        bind.execute(_insert(bind)(part).on_conflict_do_nothing(), [parts[digest] for digest in sorted(parts)])
    bind.execute(_REWRITE, rewritten)


def _assemble_batch(rows: Sequence[sa.Row[Any]]) -> None:
    bind = op.get_bind()
    wanted = sorted({digest for row in rows for digest in row.parts.values()})
    documents = dict(bind.execute(sa.select(part.c.digest, part.c.document).where(part.c.digest.in_(wanted))).all())
    rewritten = [
        {"key": row.id, "snapshot": {**row.snapshot, **{r: documents[d] for r, d in row.parts.items()}}} for row in rows
    ]
    bind.execute(_REWRITE, rewritten)


def _insert(bind: Connection) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING (PostgreSQL, SQLite)."""
    return postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert

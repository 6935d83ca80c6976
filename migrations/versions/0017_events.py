"""events: the outbox of state changes the parties care about, the organisations each concerns, and the
clock that numbers them in commit order

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_event")),
        sa.UniqueConstraint("id", name=op.f("uq_event_id")),
    )
    op.create_index("ix_event_type_seq", "event", ["type", "seq"], unique=False)
    op.create_table(
        "event_party",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["event_seq"], ["event.seq"], name=op.f("fk_event_party_event_seq_event")),
        sa.PrimaryKeyConstraint("organization_id", "event_seq", name=op.f("pk_event_party")),
    )
    op.create_index(op.f("ix_event_party_event_seq"), "event_party", ["event_seq"], unique=False)
    op.create_table(
        "event_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_clock")),
    )


def downgrade() -> None:
    op.drop_table("event_clock")
    op.drop_index(op.f("ix_event_party_event_seq"), table_name="event_party")
    op.drop_table("event_party")
    op.drop_index("ix_event_type_seq", table_name="event")
    op.drop_table("event")

"""verdicts and declared data grade

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:28:55.411958
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import marketplace.kit.sqltypes

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verdict",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "admission", "listing", "trade", "delivery", "settlement", name="stage", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("subject_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "decision",
            sa.Enum("accepted", "review", "rejected", name="decision", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "findings", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("rulebook_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "snapshot", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdict")),
    )
    with op.batch_alter_table("verdict", schema=None) as batch_op:
        batch_op.create_index("ix_verdict_subject", ["subject_type", "subject_id", "created_at"], unique=False)

    with op.batch_alter_table("organization", schema=None) as batch_op:
        # existing organisations declared nothing: they handle general data
        batch_op.add_column(
            sa.Column(
                "max_data_grade",
                sa.Enum("general", "important", "core", name="datagrade", native_enum=False, length=16),
                nullable=False,
                server_default="general",
            )
        )
        batch_op.add_column(sa.Column("last_penalty_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("last_penalty_on")
        batch_op.drop_column("max_data_grade")

    with op.batch_alter_table("verdict", schema=None) as batch_op:
        batch_op.drop_index("ix_verdict_subject")

    op.drop_table("verdict")

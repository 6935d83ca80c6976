"""payouts: transfers of providers' settled money to their gateway accounts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 06:15:12.117564
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import marketplace.kit.sqltypes

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payout",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("debt_repaid_minor", sa.BigInteger(), nullable=False),
        sa.Column("gateway", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("destination", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column(
            "status",
            sa.Enum("pending", "sent", "failed", name="payoutstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("failure", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_payout_amount_not_negative")),
        sa.CheckConstraint("debt_repaid_minor >= 0", name=op.f("ck_payout_debt_repaid_not_negative")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_payout_organization_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout")),
        sa.UniqueConstraint("reference", name=op.f("uq_payout_reference")),
    )
    with op.batch_alter_table("payout", schema=None) as batch_op:
        batch_op.create_index("ix_payout_organization_created", ["organization_id", "created_at"], unique=False)
        batch_op.create_index("ix_payout_status_created", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payout", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_status_created")
        batch_op.drop_index("ix_payout_organization_created")

    op.drop_table("payout")

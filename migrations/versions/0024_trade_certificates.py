"""trade certificates: the first certificate issued for each completed order, kept so the order answers the same one

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trade_certificate",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("certificate_id", sa.Uuid(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["trade_order.id"], name=op.f("fk_trade_certificate_order_id_trade_order")
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_trade_certificate")),
        sa.UniqueConstraint("certificate_id", name=op.f("uq_trade_certificate_certificate_id")),
    )


def downgrade() -> None:
    op.drop_table("trade_certificate")

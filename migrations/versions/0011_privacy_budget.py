"""privacy budget: the differential privacy (epsilon, in millionths) a privacy-computing licence may spend, and has

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:37:10.779999
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import marketplace.kit.sqltypes

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "licence_privacy_budget",
        sa.Column("licence_id", sa.Uuid(), nullable=False),
        sa.Column("budget_micro", sa.BigInteger(), nullable=False),
        sa.Column("spent_micro", sa.BigInteger(), nullable=False),
        sa.Column("queries", sa.Integer(), nullable=False),
        sa.Column("updated_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "spent_micro >= 0 AND spent_micro <= budget_micro",
            name=op.f("ck_licence_privacy_budget_privacy_within_budget"),
        ),
        sa.ForeignKeyConstraint(
            ["licence_id"], ["licence.id"], name=op.f("fk_licence_privacy_budget_licence_id_licence")
        ),
        sa.PrimaryKeyConstraint("licence_id", name=op.f("pk_licence_privacy_budget")),
    )


def downgrade() -> None:
    op.drop_table("licence_privacy_budget")

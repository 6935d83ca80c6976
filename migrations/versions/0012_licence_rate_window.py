"""licence rate window: a licence's data calls in one minute, whichever access key made them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import marketplace.kit.sqltypes

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "licence_rate_window",
        sa.Column("licence_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["licence_id"], ["licence.id"], name=op.f("fk_licence_rate_window_licence_id_licence")),
        sa.PrimaryKeyConstraint("licence_id", "window_start", name=op.f("pk_licence_rate_window")),
    )


def downgrade() -> None:
    op.drop_table("licence_rate_window")

"""codes the rules judge: room for a USCC, a jurisdiction and an industry code as declared

The request schema no longer refuses a code of the wrong shape: S1 judges a USCC, S8 a jurisdiction and S7 an
industry code, with a stored verdict that names them. The columns hold what the schema lets through.

PostgreSQL only: SQLite does not enforce a VARCHAR's length (and migrations/env.py does not compare lengths
there), so its tables are not recreated for it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, old length, new length)
WIDENED = [
    ("organization", "uscc", 18, 64),
    ("organization", "jurisdiction", 6, 16),
    ("product_version", "industry_code", 8, 32),
]


def _resize(to_new: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, old, new in WIDENED:
        op.alter_column(
            table,
            column,
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=old if to_new else new),
            type_=sqlmodel.sql.sqltypes.AutoString(length=new if to_new else old),
        )


def upgrade() -> None:
    _resize(to_new=True)


def downgrade() -> None:
    _resize(to_new=False)

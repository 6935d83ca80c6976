"""verdict findings compressed with lz4 (PostgreSQL)

A trade verdict's findings are about 26 kB of JSON, stored out of line and compressed. PostgreSQL's default
compression (pglz) costs about 0.35 ms of the database's CPU per order placed to squeeze them to 6.7 kB; lz4
costs about a seventh of that for 7.6 kB. New values are compressed with lz4 where the server was built with
it (a server without it keeps pglz); stored values stay as they are, and read the same either way. SQLite has
no such setting.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 03:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DO $$ BEGIN ALTER TABLE verdict ALTER COLUMN findings SET COMPRESSION lz4; "
        "EXCEPTION WHEN feature_not_supported THEN NULL; END $$"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE verdict ALTER COLUMN findings SET COMPRESSION default")

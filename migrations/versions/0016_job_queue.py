"""job queue: the tables and functions of procrastinate, the job engine of `marketplace worker` (PostgreSQL only)

procrastinate ships its schema as SQL; this applies the schema of the version pyproject.toml pins, so that
`marketplace db upgrade` prepares everything a worker needs. A later procrastinate with another schema comes
with a migration applying its own migration files. SQLite has no job engine (the jobs run in-process there):
nothing to do.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-12 10:00:00
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy import text
from sqlalchemy.util import await_

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = "procrastinate"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Many statements in one: asyncpg runs them as a simple query (no parameters, nothing prepared), in the
    # migration's transaction. Not through SQLAlchemy, which would prepare it as one statement.
    driver = op.get_bind().connection.driver_connection
    await_(driver.execute(SchemaManager.get_schema()))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    bind = op.get_bind()
    # every object the schema created is named procrastinate_*: tables (with their triggers), functions, then types
    # (enums and composites; the tables' own row types went with them)
    like = {"like": f"{PREFIX}\\_%"}
    tables = bind.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE :like"), like).scalars()
    for table in tables.all():
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    functions = bind.execute(
        text("SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE :like"), like
    ).scalars()
    for function in functions.all():
        op.execute(f"DROP FUNCTION IF EXISTS {function} CASCADE")
    types = bind.execute(text("SELECT typname FROM pg_type WHERE typname LIKE :like AND typtype IN ('e', 'c')"), like)
    for name in types.scalars().all():
        op.execute(f"DROP TYPE IF EXISTS {name} CASCADE")

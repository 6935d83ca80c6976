"""catalog search speed: versions name their provider; stored tsvector (PostgreSQL); indexes of listed versions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTED = sa.text("status = 'listed'")
LISTED_COLUMNS = [
    "category",
    "grade",
    "min_price_minor",
    "listed_at",
    "organization_id",
    "industry_code",
    "regions",
    "delivery_modes",
]

# The orders a search page can ask for, each an index of listed versions so that a page of the
# newest or cheapest products reads twenty index entries, not the whole catalog. PostgreSQL sorts
# NULL last in ascending order and needs NULLS LAST spelled out for descending; SQLite puts NULL
# first in ascending order and cannot use an index for NULLS LAST, so its price index is a plain one.
SORT_INDEXES = {
    "ix_product_version_sort_newest": ("listed_at DESC, id", "listed_at DESC, id"),
    "ix_product_version_sort_price": ("min_price_minor, listed_at DESC, id", "min_price_minor, listed_at DESC, id"),
    "ix_product_version_sort_price_desc": (
        "min_price_minor DESC NULLS LAST, listed_at DESC, id",
        "min_price_minor DESC, listed_at DESC, id",
    ),
}


def _triggers() -> list[str]:
    """The FTS5 triggers of migration 0004 (SQLite): a batch operation that recreates the table drops
    them, so they are read before it and created again after."""
    if op.get_bind().dialect.name != "sqlite":
        return []
    query = sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'product_version'")
    return list(op.get_bind().execute(query).scalars())


def upgrade() -> None:
    triggers = _triggers()
    with op.batch_alter_table("product_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organization_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE product_version SET organization_id = "
        "(SELECT organization_id FROM product WHERE product.id = product_version.product_id)"
    )
    with op.batch_alter_table("product_version", schema=None) as batch_op:
        batch_op.alter_column("organization_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_product_version_organization_id_organization"), "organization", ["organization_id"], ["id"]
        )
    for trigger in triggers:
        op.execute(trigger)
    # Plain index operations: a batch operation could recreate the table on SQLite and drop the
    # FTS5 triggers of migration 0004.
    op.drop_index("ix_product_version_listing", table_name="product_version")
    op.create_index(
        "ix_product_version_listed", "product_version", LISTED_COLUMNS, postgresql_where=LISTED, sqlite_where=LISTED
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, (postgres_columns, sqlite_columns) in SORT_INDEXES.items():
        columns = postgres_columns if postgres else sqlite_columns
        op.execute(f"CREATE INDEX {name} ON product_version ({columns}) WHERE status = 'listed'")
    if postgres:
        # Ranking reads the stored vector instead of parsing search_text for every matched row.
        op.execute("DROP INDEX ix_product_version_search")
        op.execute(
            "ALTER TABLE product_version ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED"
        )
        op.execute("CREATE INDEX ix_product_version_search_vector ON product_version USING gin (search_vector)")


def downgrade() -> None:
    for name in SORT_INDEXES:
        op.execute(f"DROP INDEX {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_product_version_search_vector")
        op.execute("ALTER TABLE product_version DROP COLUMN search_vector")
        op.execute(
            "CREATE INDEX ix_product_version_search ON product_version USING gin (to_tsvector('simple', search_text))"
        )
    op.drop_index("ix_product_version_listed", table_name="product_version")
    op.create_index("ix_product_version_listing", "product_version", ["status", "category", "grade"])
    triggers = _triggers()
    with op.batch_alter_table("product_version", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_product_version_organization_id_organization"), type_="foreignkey")
        batch_op.drop_column("organization_id")
    for trigger in triggers:
        op.execute(trigger)

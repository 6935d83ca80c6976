"""catalog search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:57:59.641141
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("product_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("min_price_minor", sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f("ix_product_version_min_price_minor"), ["min_price_minor"], unique=False)

    # Full-text search over `search_text` (CJK bigrams, see marketplace/catalog/search_text.py).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_product_version_search ON product_version USING gin (to_tsvector('simple', search_text))"
        )
    else:
        # FTS5 keyed by the version id, kept in step by triggers. A later SQLite batch migration that
        # recreates product_version must create these triggers again.
        op.execute("CREATE VIRTUAL TABLE product_version_fts USING fts5(version_id UNINDEXED, search_text)")
        op.execute(
            "CREATE TRIGGER product_version_fts_insert AFTER INSERT ON product_version BEGIN "
            "INSERT INTO product_version_fts (version_id, search_text) VALUES (NEW.id, NEW.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER product_version_fts_update AFTER UPDATE OF search_text ON product_version BEGIN "
            "UPDATE product_version_fts SET search_text = NEW.search_text WHERE version_id = NEW.id; END"
        )
        op.execute(
            "CREATE TRIGGER product_version_fts_delete AFTER DELETE ON product_version BEGIN "
            "DELETE FROM product_version_fts WHERE version_id = OLD.id; END"
        )
        op.execute(
            "INSERT INTO product_version_fts (version_id, search_text) SELECT id, search_text FROM product_version"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_product_version_search")
    else:
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER product_version_fts_{trigger}")
        op.execute("DROP TABLE product_version_fts")
    with op.batch_alter_table("product_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_version_min_price_minor"))
        batch_op.drop_column("min_price_minor")
        batch_op.drop_column("search_text")

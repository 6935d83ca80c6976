"""search rows (SQLite): the FTS5 index keyed by the rowid of a narrow table of what search filters, sorts and counts

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 00:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every version, as migration 0004 indexed them: bm25 ranks with the counts of the whole index, so indexing
# only listed versions would change the order of results.
UPGRADE = [
    # Types as product_version stores them (UUIDs as 32 hex digits, times as ISO text), so that values copied
    # by the triggers compare and sort alike.
    """CREATE TABLE product_version_search (
    fts_rowid INTEGER PRIMARY KEY,
    id CHAR(32) NOT NULL UNIQUE,
    status VARCHAR(16) NOT NULL,
    category VARCHAR(40) NOT NULL,
    grade VARCHAR(16) NOT NULL,
    min_price_minor BIGINT,
    listed_at DATETIME,
    organization_id CHAR(32) NOT NULL,
    industry_code VARCHAR(32) NOT NULL,
    regions JSON NOT NULL,
    delivery_modes JSON NOT NULL)""",
    # Contentless: the document is product_version.search_text, which the triggers give back to delete it.
    # Positions are kept (detail=full): bm25 reads term frequencies from them, and would otherwise tokenize
    # the documents again, which a contentless table cannot. Three-character prefixes have their own index:
    # the shortest Latin prefix query (`wea`) is the broadest.
    "CREATE VIRTUAL TABLE product_version_fts USING fts5(search_text, content='', prefix='3')",
    """CREATE TRIGGER product_version_search_insert AFTER INSERT ON product_version BEGIN
    INSERT INTO product_version_search (id, status, category, grade, min_price_minor, listed_at,
        organization_id, industry_code, regions, delivery_modes)
        VALUES (NEW.id, NEW.status, NEW.category, NEW.grade, NEW.min_price_minor, NEW.listed_at,
        NEW.organization_id, NEW.industry_code, NEW.regions, NEW.delivery_modes);
    INSERT INTO product_version_fts (rowid, search_text)
        VALUES ((SELECT fts_rowid FROM product_version_search WHERE id = NEW.id), NEW.search_text);
END""",
    """CREATE TRIGGER product_version_search_update AFTER UPDATE OF status, category, grade, min_price_minor, listed_at,
        organization_id, industry_code, regions, delivery_modes
    ON product_version BEGIN
    UPDATE product_version_search SET (status, category, grade, min_price_minor, listed_at,
        organization_id, industry_code, regions, delivery_modes)
        = (NEW.status, NEW.category, NEW.grade, NEW.min_price_minor, NEW.listed_at,
        NEW.organization_id, NEW.industry_code, NEW.regions, NEW.delivery_modes) WHERE id = NEW.id;
END""",
    """CREATE TRIGGER product_version_search_text AFTER UPDATE OF search_text ON product_version BEGIN
    INSERT INTO product_version_fts (product_version_fts, rowid, search_text)
        VALUES ('delete', (SELECT fts_rowid FROM product_version_search WHERE id = OLD.id), OLD.search_text);
    INSERT INTO product_version_fts (rowid, search_text)
        VALUES ((SELECT fts_rowid FROM product_version_search WHERE id = NEW.id), NEW.search_text);
END""",
    """CREATE TRIGGER product_version_search_delete AFTER DELETE ON product_version BEGIN
    INSERT INTO product_version_fts (product_version_fts, rowid, search_text)
        VALUES ('delete', (SELECT fts_rowid FROM product_version_search WHERE id = OLD.id), OLD.search_text);
    DELETE FROM product_version_search WHERE id = OLD.id;
END""",
    """INSERT INTO product_version_search (id, status, category, grade, min_price_minor, listed_at,
        organization_id, industry_code, regions, delivery_modes)
    SELECT id, status, category, grade, min_price_minor, listed_at,
        organization_id, industry_code, regions, delivery_modes FROM product_version""",
    """INSERT INTO product_version_fts (rowid, search_text)
    SELECT s.fts_rowid, v.search_text FROM product_version_search s JOIN product_version v ON v.id = s.id""",
    # No ANALYZE: statistics taken of a new installation's empty tables stay behind as the catalog grows, and
    # with them FTS5's writes read ten times the pages (308,000 read calls instead of 28,000 for 10,000 versions).
]

# Migration 0004's index, keyed by version id and holding its own copy of every document.
DOWNGRADE = [
    "CREATE VIRTUAL TABLE product_version_fts USING fts5(version_id UNINDEXED, search_text)",
    """CREATE TRIGGER product_version_fts_insert AFTER INSERT ON product_version BEGIN
    INSERT INTO product_version_fts (version_id, search_text) VALUES (NEW.id, NEW.search_text); END""",
    """CREATE TRIGGER product_version_fts_update AFTER UPDATE OF search_text ON product_version BEGIN
    UPDATE product_version_fts SET search_text = NEW.search_text WHERE version_id = NEW.id; END""",
    """CREATE TRIGGER product_version_fts_delete AFTER DELETE ON product_version BEGIN
    DELETE FROM product_version_fts WHERE version_id = OLD.id; END""",
    "INSERT INTO product_version_fts (version_id, search_text) SELECT id, search_text FROM product_version",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's search (migration 0005) stays as it is
    for trigger in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER product_version_fts_{trigger}")
    op.execute("DROP TABLE product_version_fts")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("insert", "update", "text", "delete"):
        op.execute(f"DROP TRIGGER product_version_search_{trigger}")
    op.execute("DROP TABLE product_version_fts")
    op.execute("DROP TABLE product_version_search")
    for statement in DOWNGRADE:
        op.execute(statement)

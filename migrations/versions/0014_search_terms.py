"""search terms: the vocabulary of listed versions' words, which misspelt query words are corrected against

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 16:00:00.000000
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A stored search document is its tokens joined by spaces; the vocabulary keeps those of two or more
# characters without CJK (marketplace.catalog.search_text.vocabulary), frozen here as this revision wrote it.
_CJK = re.compile(
    "[\u1100-\u11ff\u3005-\u303c\u3041-\u30ff\u31f0-\u31ff\u3400-\u9fff\ua960-\ud7ff\uf900-\ufaff\U00020000-\U000323af]"
)


def upgrade() -> None:
    op.create_table(
        "search_term",
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("term", name=op.f("pk_search_term")),
    )
    connection = op.get_bind()
    documents = connection.execute(sa.text("SELECT search_text FROM product_version WHERE status = 'listed'"))
    words = {
        word for (document,) in documents for word in document.split(" ") if len(word) >= 2 and not _CJK.search(word)
    }
    if words:
        table = sa.table("search_term", sa.column("term", sa.String))
        op.bulk_insert(table, [{"term": word} for word in sorted(words)])


def downgrade() -> None:
    op.drop_table("search_term")

"""failed checks: each verdict's failed findings (rule and check) stored beside them, and the overview's indexes

The console's overview ranks the checks that fail most over the last 30 days; unpacking every verdict's findings
to find them took seconds at 100,000 orders. A verdict now keeps the rule and check of each failed finding in
`failed_checks` (written with the verdict); upgrade fills it from the findings of the verdicts stored before.
Indexes serve the overview's charts: verdicts by time (with stage and decision), the failing ones by time (on
PostgreSQL with their failed checks), orders by time (on PostgreSQL with currency and amount), each read from the
index alone; and on PostgreSQL statistics on an order's UTC day, so that the planner knows trades per day make a
few groups (a hash, not a sort of every order).

`failed_checks` defaults to [] and is added in place on SQLite, where rebuilding `verdict` would drop a table
that trade_order refers to.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# Each verdict's failed findings in their order, as {"rule_id", "check"} (ComplianceService.assess writes the same).
_FILL = {
    "postgresql": """
        UPDATE verdict SET failed_checks = (
            SELECT jsonb_agg(jsonb_build_object('rule_id', f->'rule_id', 'check', f->'check') ORDER BY n)
            FROM jsonb_array_elements(findings) WITH ORDINALITY AS e(f, n) WHERE f->>'outcome' = 'fail')
        WHERE findings @> '[{"outcome": "fail"}]'""",
    "sqlite": """
        UPDATE verdict SET failed_checks = (
            SELECT json_group_array(json_object('rule_id', json_extract(f.value, '$.rule_id'),
                                                'check', json_extract(f.value, '$.check')))
            FROM (SELECT value FROM json_each(verdict.findings)
                  WHERE json_extract(value, '$.outcome') = 'fail' ORDER BY key) AS f)
        WHERE EXISTS (SELECT 1 FROM json_each(verdict.findings) WHERE json_extract(value, '$.outcome') = 'fail')""",
}


# The expression trades per day group by (ConsoleQueries.trades_per_day).
_DAY_STATISTICS = "CREATE STATISTICS trade_order_day ON (CAST(timezone('UTC', created_at) AS DATE)) FROM trade_order"


def upgrade() -> None:
    op.add_column("verdict", sa.Column("failed_checks", JSON, nullable=False, server_default="[]"))
    op.execute(_FILL[op.get_bind().dialect.name])
    op.create_index("ix_verdict_created", "verdict", ["created_at", "stage", "decision"], unique=False)
    op.create_index(
        "ix_verdict_failing",
        "verdict",
        ["created_at"],
        unique=False,
        postgresql_include=["failed_checks"],
        postgresql_where=sa.text("failed_checks <> '[]'::jsonb"),
        sqlite_where=sa.text("failed_checks <> '[]'"),
    )
    op.create_index(
        "ix_trade_order_created",
        "trade_order",
        ["created_at"],
        unique=False,
        postgresql_include=["currency", "amount_minor"],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_DAY_STATISTICS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS trade_order_day")
    op.drop_index("ix_trade_order_created", table_name="trade_order")
    op.drop_index("ix_verdict_failing", table_name="verdict")
    op.drop_index("ix_verdict_created", table_name="verdict")
    op.drop_column("verdict", "failed_checks")

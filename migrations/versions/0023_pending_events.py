"""pending events and pooled ledger accounts: no lock shared by every writer of events or every payer

Events: written with no number, numbered in commit order by a sequencer; the event clock dropped.

Every transaction that wrote events advanced the one-row `event_clock` and held its lock until it committed, so
all writers of events queued on one row. On PostgreSQL a writer now inserts its events into `pending_event`
(an identity column orders them), and a sequencer that takes an advisory lock moves them into `event`, numbered
after the last event (marketplace/events/repository.py); on SQLite an event is numbered after the last one as it
is written. The numbers already given stay; the next one follows the largest.

Ledger: the platform's clearing, revenue and refunds accounts of each currency (marketplace.ledger.models.
POOLED_CODES), which every payment, settlement or refund moved, keep no running totals: their totals are the
sums of their transfers. Upgrade sets their totals to 0; downgrade sums their transfers back into them.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pending_event",
        sa.Column("number", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parties", JSON, nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_pending_event")),
    )
    op.drop_table("event_clock")
    op.execute(
        "UPDATE ledger_account SET debits_posted = 0, credits_posted = 0"
        " WHERE code IN ('platform_clearing', 'platform_revenue', 'refunds')"
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE ledger_account
        SET debits_posted = (SELECT coalesce(sum(amount_minor), 0) FROM ledger_transfer
                             WHERE debit_account_id = ledger_account.id),
            credits_posted = (SELECT coalesce(sum(amount_minor), 0) FROM ledger_transfer
                              WHERE credit_account_id = ledger_account.id)
        WHERE code IN ('platform_clearing', 'platform_revenue', 'refunds')
        """
    )
    op.create_table(
        "event_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_clock")),
    )
    # The clock resumes after the last event; events still pending are numbered as the clock did.
    op.execute("INSERT INTO event_clock (id, seq) SELECT 1, coalesce(max(seq), 0) FROM event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            WITH numbered AS (
                SELECT pending_event.*, last.seq + row_number() OVER (ORDER BY number) AS seq
                FROM pending_event, (SELECT coalesce(max(seq), 0) AS seq FROM event) AS last
            ), appended AS (
                INSERT INTO event (seq, id, type, subject_type, subject_id, payload, created_at)
                SELECT seq, id, type, subject_type, subject_id, payload, created_at FROM numbered
            ), concerned AS (
                INSERT INTO event_party (organization_id, event_seq)
                SELECT party::uuid, numbered.seq FROM numbered, jsonb_array_elements_text(numbered.parties) AS party
            )
            UPDATE event_clock SET seq = seq + (SELECT count(*) FROM numbered)
            """
        )
    op.drop_table("pending_event")

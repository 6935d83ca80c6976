"""ledger: accounts with running totals, immutable transfers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 05:03:05.284586
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import marketplace.kit.sqltypes

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_account",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column(
            "code",
            sa.Enum(
                "platform_clearing",
                "escrow",
                "provider_payable",
                "platform_revenue",
                "refunds",
                "payouts",
                "provider_debt",
                name="accountcode",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("no_overdraft", sa.Boolean(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "NOT no_overdraft OR credits_posted >= debits_posted", name=op.f("ck_ledger_account_no_overdraft")
        ),
        sa.CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0", name=op.f("ck_ledger_account_posted_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_ledger_account_organization_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_account")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_account_key")),
    )
    with op.batch_alter_table("ledger_account", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_account_organization_currency", ["organization_id", "currency"], unique=False)

    op.create_table(
        "ledger_transfer",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("debit_account_id", sa.Uuid(), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "payment",
                "settlement",
                "fee",
                "refund",
                "payout",
                "reversal",
                "debt",
                name="transferkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_ledger_transfer_amount_positive")),
        sa.CheckConstraint("debit_account_id <> credit_account_id", name=op.f("ck_ledger_transfer_two_accounts")),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["ledger_account.id"],
            name=op.f("fk_ledger_transfer_credit_account_id_ledger_account"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"], ["ledger_account.id"], name=op.f("fk_ledger_transfer_debit_account_id_ledger_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transfer")),
    )
    with op.batch_alter_table("ledger_transfer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_transfer_credit_account_id"), ["credit_account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_transfer_debit_account_id"), ["debit_account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_transfer_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_transfer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_transfer_order_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_transfer_debit_account_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_transfer_credit_account_id"))

    op.drop_table("ledger_transfer")
    with op.batch_alter_table("ledger_account", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_account_organization_currency")

    op.drop_table("ledger_account")

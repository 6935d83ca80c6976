"""recurring billing: usage statements of metered licences, subscription renewals, buyers' saved payment methods,
and the renewal period of a subscription's licence

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 18:00:48.156794
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saved_payment_method",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("customer", sa.String(length=255), nullable=False),
        sa.Column("setup_reference", sa.String(length=255), nullable=True),
        sa.Column("payment_method", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_saved_payment_method_organization_id_organization")
        ),
        sa.PrimaryKeyConstraint("organization_id", "gateway", name=op.f("pk_saved_payment_method")),
    )
    op.create_table(
        "subscription_renewal",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("licence_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_organization_id", sa.Uuid(), nullable=False),
        sa.Column("provider_organization_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("issued", "paid", "failed", "lapsed", name="chargestatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gateway", sa.String(length=16), nullable=True),
        sa.Column("payment_reference", sa.String(length=120), nullable=True),
        sa.Column("failure", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount_minor >= 0 AND attempts >= 0", name=op.f("ck_subscription_renewal_not_negative")),
        sa.ForeignKeyConstraint(
            ["buyer_organization_id"],
            ["organization.id"],
            name=op.f("fk_subscription_renewal_buyer_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["licence_id"], ["licence.id"], name=op.f("fk_subscription_renewal_licence_id_licence")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["trade_order.id"], name=op.f("fk_subscription_renewal_order_id_trade_order")
        ),
        sa.ForeignKeyConstraint(
            ["provider_organization_id"],
            ["organization.id"],
            name=op.f("fk_subscription_renewal_provider_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_renewal")),
        sa.UniqueConstraint("licence_id", "period_start", name="uq_subscription_renewal_licence_period"),
    )
    with op.batch_alter_table("subscription_renewal", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscription_renewal_buyer_organization_id"), ["buyer_organization_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subscription_renewal_provider_organization_id"), ["provider_organization_id"], unique=False
        )
        batch_op.create_index(
            "ix_subscription_renewal_status_next_attempt", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "usage_statement",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("licence_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_organization_id", sa.Uuid(), nullable=False),
        sa.Column("provider_organization_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("issued", "paid", "failed", "lapsed", name="chargestatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gateway", sa.String(length=16), nullable=True),
        sa.Column("payment_reference", sa.String(length=120), nullable=True),
        sa.Column("failure", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("billable_calls", sa.Integer(), nullable=False),
        sa.CheckConstraint("amount_minor >= 0 AND attempts >= 0", name=op.f("ck_usage_statement_not_negative")),
        sa.ForeignKeyConstraint(
            ["buyer_organization_id"],
            ["organization.id"],
            name=op.f("fk_usage_statement_buyer_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(["licence_id"], ["licence.id"], name=op.f("fk_usage_statement_licence_id_licence")),
        sa.ForeignKeyConstraint(["order_id"], ["trade_order.id"], name=op.f("fk_usage_statement_order_id_trade_order")),
        sa.ForeignKeyConstraint(
            ["provider_organization_id"],
            ["organization.id"],
            name=op.f("fk_usage_statement_provider_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_statement")),
        sa.UniqueConstraint("licence_id", "period", name="uq_usage_statement_licence_period"),
    )
    with op.batch_alter_table("usage_statement", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_statement_buyer_organization_id"), ["buyer_organization_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_usage_statement_provider_organization_id"), ["provider_organization_id"], unique=False
        )
        batch_op.create_index("ix_usage_statement_status_next_attempt", ["status", "next_attempt_at"], unique=False)

    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renewal_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.drop_column("renewal_days")

    with op.batch_alter_table("usage_statement", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_statement_status_next_attempt")
        batch_op.drop_index(batch_op.f("ix_usage_statement_provider_organization_id"))
        batch_op.drop_index(batch_op.f("ix_usage_statement_buyer_organization_id"))

    op.drop_table("usage_statement")
    with op.batch_alter_table("subscription_renewal", schema=None) as batch_op:
        batch_op.drop_index("ix_subscription_renewal_status_next_attempt")
        batch_op.drop_index(batch_op.f("ix_subscription_renewal_provider_organization_id"))
        batch_op.drop_index(batch_op.f("ix_subscription_renewal_buyer_organization_id"))

    op.drop_table("subscription_renewal")
    op.drop_table("saved_payment_method")

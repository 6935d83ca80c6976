"""orders: trades, their status history, idempotent requests; licences left per product

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 05:56:01.525110
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import marketplace.kit.sqltypes

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "state", sa.Enum("in_flight", "done", name="idempotencystate", native_enum=False, length=16), nullable=False
        ),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column(
            "response_body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("started_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("actor", "key", name=op.f("pk_idempotency_record")),
    )
    op.create_table(
        "trade_order",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("buyer_organization_id", sa.Uuid(), nullable=False),
        sa.Column("provider_organization_id", sa.Uuid(), nullable=False),
        sa.Column("intermediary_organization_id", sa.Uuid(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("product_version_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("placed_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("scenario", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("delivery_mode", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending_review",
                "rejected",
                "accepted",
                "paid",
                "delivered",
                "completed",
                "settled",
                "paid_out",
                "disputed",
                "refunded",
                "cancelled",
                name="orderstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("verdict_id", sa.Uuid(), nullable=False),
        sa.Column(
            "decision",
            sa.Enum("accepted", "review", "rejected", name="decision", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "flagged_rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("licences_reserved", sa.Integer(), nullable=False),
        sa.Column("payment_gateway", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("payment_reference", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("refund_reference", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("payout_id", sa.Uuid(), nullable=True),
        sa.Column("dispute_reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("status_changed_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_trade_order_amount_not_negative")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_trade_order_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["buyer_organization_id"],
            ["organization.id"],
            name=op.f("fk_trade_order_buyer_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["intermediary_organization_id"],
            ["organization.id"],
            name=op.f("fk_trade_order_intermediary_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["price_plan.id"], name=op.f("fk_trade_order_plan_id_price_plan")),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name=op.f("fk_trade_order_product_id_product")),
        sa.ForeignKeyConstraint(
            ["product_version_id"],
            ["product_version.id"],
            name=op.f("fk_trade_order_product_version_id_product_version"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_organization_id"],
            ["organization.id"],
            name=op.f("fk_trade_order_provider_organization_id_organization"),
        ),
        sa.ForeignKeyConstraint(["verdict_id"], ["verdict.id"], name=op.f("fk_trade_order_verdict_id_verdict")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_order")),
        sa.UniqueConstraint("payment_reference", name=op.f("uq_trade_order_payment_reference")),
    )
    with op.batch_alter_table("trade_order", schema=None) as batch_op:
        batch_op.create_index("ix_trade_order_buyer_created", ["buyer_organization_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_trade_order_payout_id"), ["payout_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trade_order_product_id"), ["product_id"], unique=False)
        batch_op.create_index(
            "ix_trade_order_provider_created", ["provider_organization_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_trade_order_status_changed", ["status", "status_changed_at"], unique=False)

    op.create_table(
        "order_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column(
            "from_status",
            sa.Enum(
                "pending_review",
                "rejected",
                "accepted",
                "paid",
                "delivered",
                "completed",
                "settled",
                "paid_out",
                "disputed",
                "refunded",
                "cancelled",
                name="orderstatus",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_status",
            sa.Enum(
                "pending_review",
                "rejected",
                "accepted",
                "paid",
                "delivered",
                "completed",
                "settled",
                "paid_out",
                "disputed",
                "refunded",
                "cancelled",
                name="orderstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["trade_order.id"], name=op.f("fk_order_event_order_id_trade_order")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_event")),
    )
    with op.batch_alter_table("order_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_event_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entry_object", ["object_type", "object_id", "seq"], unique=False)

    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.add_column(sa.Column("licences_remaining", sa.Integer(), nullable=True))
        batch_op.create_check_constraint("licences_not_negative", "licences_remaining >= 0")


def downgrade() -> None:
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_constraint("licences_not_negative", type_="check")
        batch_op.drop_column("licences_remaining")

    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entry_object")

    with op.batch_alter_table("order_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_event_order_id"))

    op.drop_table("order_event")
    with op.batch_alter_table("trade_order", schema=None) as batch_op:
        batch_op.drop_index("ix_trade_order_status_changed")
        batch_op.drop_index("ix_trade_order_provider_created")
        batch_op.drop_index(batch_op.f("ix_trade_order_product_id"))
        batch_op.drop_index(batch_op.f("ix_trade_order_payout_id"))
        batch_op.drop_index("ix_trade_order_buyer_created")

    op.drop_table("trade_order")
    op.drop_table("idempotency_record")

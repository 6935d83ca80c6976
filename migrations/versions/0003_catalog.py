"""catalog

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:42:32.546368
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import marketplace.kit.sqltypes

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "under_review",
                "listed",
                "rejected",
                "delisted",
                name="productstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("listed_version", sa.Integer(), nullable=True),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organization.id"], name=op.f("fk_product_organization_id_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product")),
    )
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_product_status"), ["status"], unique=False)

    op.create_table(
        "sample",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column(
            "columns", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "head", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name=op.f("fk_sample_product_id_product")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample")),
    )
    with op.batch_alter_table("sample", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sample_product_id"), ["product_id"], unique=False)

    op.create_table(
        "product_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "under_review",
                "listed",
                "rejected",
                "superseded",
                "delisted",
                name="versionstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("industry_code", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column(
            "regions", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("grade", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("contains_personal_info", sa.Boolean(), nullable=False),
        sa.Column("data_source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column(
            "permitted_scenarios",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "delivery_modes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("sample_id", sa.Uuid(), nullable=True),
        sa.Column("content_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("decision_reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("submitted_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("listed_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name=op.f("fk_product_version_product_id_product")),
        sa.ForeignKeyConstraint(["sample_id"], ["sample.id"], name=op.f("fk_product_version_sample_id_sample")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_version")),
        sa.UniqueConstraint("product_id", "version", name=op.f("uq_product_version_product_id")),
    )
    with op.batch_alter_table("product_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_version_industry_code"), ["industry_code"], unique=False)
        batch_op.create_index("ix_product_version_listing", ["status", "category", "grade"], unique=False)
        batch_op.create_index(batch_op.f("ix_product_version_product_id"), ["product_id"], unique=False)

    op.create_table(
        "price_plan",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_version_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("one_time", "subscription", "metered", "free", name="plankind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("pricing_basis", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("period_days", sa.Integer(), nullable=True),
        sa.Column("unit_price_minor", sa.BigInteger(), nullable=True),
        sa.Column("included_calls", sa.Integer(), nullable=True),
        sa.Column("monthly_cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("created_at", marketplace.kit.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_version_id"],
            ["product_version.id"],
            name=op.f("fk_price_plan_product_version_id_product_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_plan")),
    )
    with op.batch_alter_table("price_plan", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_price_plan_product_version_id"), ["product_version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("price_plan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_price_plan_product_version_id"))

    op.drop_table("price_plan")
    with op.batch_alter_table("product_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_version_product_id"))
        batch_op.drop_index("ix_product_version_listing")
        batch_op.drop_index(batch_op.f("ix_product_version_industry_code"))

    op.drop_table("product_version")
    with op.batch_alter_table("sample", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sample_product_id"))

    op.drop_table("sample")
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_status"))
        batch_op.drop_index(batch_op.f("ix_product_organization_id"))

    op.drop_table("product")

"""Every query of the certificates: the facts a certificate states (one statement, and one for the delivery
receipts), the log entry of the order's completion, and the certificates kept."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from marketplace.accounts.models import Organization
from marketplace.audit.models import AuditEntry
from marketplace.catalog.models import PricePlan, ProductVersion
from marketplace.certificates.models import TradeCertificate
from marketplace.certificates.verification import COMPLETED_ACTION
from marketplace.compliance.models import StoredVerdict
from marketplace.db import table_of, upsert_insert
from marketplace.delivery.models import Dataset, DeliveryReceipt
from marketplace.delivery.repository import DeliveryRepository
from marketplace.orders.models import Order

_BUYER, _PROVIDER, _INTERMEDIARY = (aliased(Organization) for _ in range(3))
_PARTY_COLUMNS = ("id", "name", "uscc")
_FACTS = (
    core_select(
        col(Order.id).label("order_id"),
        col(Order.status),
        col(Order.created_at).label("placed_at"),
        col(Order.scenario),
        col(Order.delivery_mode),
        col(Order.quantity),
        col(Order.amount_minor),
        col(Order.currency),
        *(getattr(_BUYER, name).label(f"buyer_{name}") for name in _PARTY_COLUMNS),
        *(getattr(_PROVIDER, name).label(f"provider_{name}") for name in _PARTY_COLUMNS),
        *(getattr(_INTERMEDIARY, name).label(f"intermediary_{name}") for name in _PARTY_COLUMNS),
        col(Order.product_id),
        col(ProductVersion.id).label("version_id"),
        col(ProductVersion.version),
        col(ProductVersion.title),
        col(Dataset.sha256).label("dataset_sha256"),
        col(PricePlan.id).label("plan_id"),
        col(PricePlan.kind).label("plan_kind"),
        col(StoredVerdict.id).label("verdict_id"),
        col(StoredVerdict.decision),
        col(StoredVerdict.rulebook_fingerprint),
    )
    .join(_BUYER, col(_BUYER.id) == col(Order.buyer_organization_id))
    .join(_PROVIDER, col(_PROVIDER.id) == col(Order.provider_organization_id))
    .outerjoin(_INTERMEDIARY, col(_INTERMEDIARY.id) == col(Order.intermediary_organization_id))
    .join(ProductVersion, col(ProductVersion.id) == col(Order.product_version_id))
    .outerjoin(Dataset, col(Dataset.product_version_id) == col(Order.product_version_id))
    .join(PricePlan, col(PricePlan.id) == col(Order.plan_id))
    .join(StoredVerdict, col(StoredVerdict.id) == col(Order.verdict_id))
)


class CertificateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.deliveries = DeliveryRepository(session)

    async def facts(self, order_id: uuid.UUID) -> dict[str, Any] | None:
        """The order's facts a certificate states, as columns named in `_FACTS`."""
        row = (await self.session.execute(_FACTS.where(col(Order.id) == order_id))).mappings().first()
        return None if row is None else dict(row)

    async def receipts(self, order_id: uuid.UUID) -> Sequence[DeliveryReceipt]:
        return await self.deliveries.receipts(order_id)

    async def completion(self, order_id: uuid.UUID) -> int | None:
        """The id of the audit entry of the order's move to completed (an order completes once)."""
        query = (
            select(col(AuditEntry.id))
            .where(
                col(AuditEntry.object_type) == "order",
                col(AuditEntry.object_id) == str(order_id),
                col(AuditEntry.action) == COMPLETED_ACTION,
            )
            .order_by(col(AuditEntry.id).desc())
            .limit(1)
        )
        return (await self.session.scalars(query)).first()

    async def kept(self, order_id: uuid.UUID) -> TradeCertificate | None:
        return await self.session.get(TradeCertificate, order_id)

    async def keep(self, certificate: TradeCertificate) -> TradeCertificate:
        """Keep the certificate unless one was kept for the order already (a concurrent first request); the one
        kept."""
        insert = upsert_insert(self.session)(table_of(TradeCertificate))
        await self.session.execute(insert.on_conflict_do_nothing(index_elements=["order_id"]), certificate.model_dump())
        kept = await self.session.get(TradeCertificate, certificate.order_id, populate_existing=True)
        assert kept is not None
        return kept

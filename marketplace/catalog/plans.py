"""A product's price plans: added to its draft version, retired from it (a plan sold stays on its orders)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.audit.service import AuditService
from marketplace.catalog.models import PlanKind, PricePlan
from marketplace.catalog.repository import CatalogRepository
from marketplace.catalog.schemas import PlanCreate
from marketplace.catalog.service import CatalogService, ProductView
from marketplace.errors import NotFound, Unprocessable
from marketplace.kit import clock
from marketplace.kit.i18n import Message


class PlanService:
    def __init__(self, session: AsyncSession, catalog: CatalogService, audit: AuditService) -> None:
        self.repository = CatalogRepository(session)
        self.catalog = catalog
        self.audit = audit

    async def add_plan(self, principal: Principal, product_id: uuid.UUID, data: PlanCreate) -> PricePlan:
        product = await self.catalog.owned_product(principal, product_id, lock=True)
        if data.kind == PlanKind.FREE and data.price_minor != 0:
            raise Unprocessable(
                Message("catalog.free-plan-priced", "a free plan costs nothing: its price_minor is 0"),
                field="price_minor",
            )
        version = await self.catalog.editable_version(product, principal)
        plan = PricePlan(product_version_id=version.id, **data.model_dump())
        await self.repository.add(plan)
        if version.min_price_minor is None or plan.price_minor < version.min_price_minor:
            version.min_price_minor = plan.price_minor
        await self.audit.record(
            actor=principal.actor,
            action="product.plan_added",
            object_type="product",
            object_id=product.id,
            payload={
                "version": version.version,
                "plan_id": str(plan.id),
                "kind": plan.kind.value,
                "price_minor": plan.price_minor,
                "currency": plan.currency,
            },
        )
        return plan

    async def retire_plan(self, principal: Principal, product_id: uuid.UUID, plan_id: uuid.UUID) -> ProductView:
        """Take a plan off the product's draft, so a bad plan never traps a product. A plan of a listed
        version stays as it was sold (orders keep it); its copy in the draft (made now if there is no draft)
        is what goes: the draft's plan with the same terms."""
        product = await self.catalog.owned_product(principal, product_id, lock=True)
        plan = await self.repository.get_plan(plan_id)
        version = await self.repository.version_by_id(plan.product_version_id) if plan else None
        if plan is None or version is None or version.product_id != product.id:
            raise NotFound(Message("catalog.plan-not-found", "plan not found"))
        draft = await self.catalog.editable_version(product, principal)
        plans = await self.repository.plans_of(draft.id)
        target = next((p for p in plans if p.id == plan.id), None) or next(
            (p for p in plans if _terms(p) == _terms(plan)), None
        )
        if target is None:
            raise NotFound(
                Message("catalog.plan-not-in-draft", "the draft has no such plan (retired already, or changed)")
            )
        await self.repository.delete(target)
        remaining = [p.price_minor for p in plans if p.id != target.id]
        draft.min_price_minor = min(remaining, default=None)
        draft.updated_at = product.updated_at = clock.now()
        await self.audit.record(
            actor=principal.actor,
            action="product.plan_retired",
            object_type="product",
            object_id=product.id,
            payload={"version": draft.version, "plan_id": str(target.id), "as_plan_id": str(plan.id)},
        )
        return await self.catalog.view_of(product, draft.version)


def _terms(plan: PricePlan) -> dict[str, Any]:
    """What a buyer pays under a plan: two plans with the same terms are the same offer."""
    return plan.model_dump(exclude={"id", "product_version_id", "created_at"})

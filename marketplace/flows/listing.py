"""Listing: a provider submits a product's draft version and the rulebook's listing stage decides first:
listed, held for an administrator, or rejected with findings."""

from __future__ import annotations

import uuid

from marketplace.accounts.principal import Principal
from marketplace.catalog.listing import ListingService
from marketplace.catalog.service import CatalogService, ProductView
from marketplace.compliance.contract import Stage
from marketplace.compliance.engine import Verdict
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.service import ComplianceService
from marketplace.flows.facts import Facts


class Listing:
    def __init__(
        self, catalog: CatalogService, listings: ListingService, compliance: ComplianceService, facts: Facts
    ) -> None:
        self.catalog = catalog
        self.listings = listings
        self.compliance = compliance
        self.facts = facts

    async def preview(self, principal: Principal, product_id: uuid.UUID) -> Verdict:
        """The listing stage's verdict on the draft, as a submission now would get it; stores and changes
        nothing, so a provider sees the gate before meeting it."""
        product, version = await self.listings.submission(principal, product_id, lock=False)
        snapshot = await self.facts.listing(await self.catalog.view_of(product, version.version))
        return self.compliance.preview(Stage.LISTING, snapshot)

    async def submit(self, principal: Principal, product_id: uuid.UUID) -> tuple[ProductView, StoredVerdict]:
        product, version = await self.listings.submission(principal, product_id)
        snapshot = await self.facts.listing(await self.catalog.view_of(product, version.version))
        stored, verdict = await self.compliance.judge(
            stage=Stage.LISTING, subject_type="product", subject_id=product.id, snapshot=snapshot, actor=principal.actor
        )
        reason = "; ".join(f.check for f in verdict.failures()) or None
        view = await self.listings.record_submission(product, version, verdict.decision, principal.actor, reason)
        return view, stored

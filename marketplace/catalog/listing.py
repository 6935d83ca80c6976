"""The listing lifecycle of a product's versions: what the listing stage or an administrator decided, delisting,
and an authority's regrading."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import MANAGING_ROLES
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.catalog.models import EDITABLE_VERSION_STATUSES, Product, ProductStatus, ProductVersion, VersionStatus
from marketplace.catalog.repository import CatalogRepository
from marketplace.catalog.search_text import vocabulary
from marketplace.catalog.service import CatalogService, ProductView
from marketplace.compliance.contract import Decision
from marketplace.errors import Conflict, Forbidden, NotFound
from marketplace.events.models import EventType
from marketplace.events.service import EventService
from marketplace.kit import clock
from marketplace.kit.i18n import Message


class ListingService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: CatalogService,
        accounts: AccountService,
        audit: AuditService,
        events: EventService,
    ) -> None:
        self.repository = CatalogRepository(session)
        self.catalog = catalog
        self.accounts = accounts
        self.audit = audit
        self.events = events

    async def submission(
        self, principal: Principal, product_id: uuid.UUID, *, lock: bool = True
    ) -> tuple[Product, ProductVersion]:
        """The product (locked unless told otherwise) and its draft, when the caller may submit it to the
        listing stage."""
        product = await self.catalog.owned_product(principal, product_id, lock=lock)
        version = await self.repository.version(product.id, product.latest_version)
        assert version is not None
        if version.status not in EDITABLE_VERSION_STATUSES:
            raise Conflict(
                Message(
                    "catalog.version-not-draft",
                    "version {version} is {status}; only a draft can be submitted",
                    version=version.version,
                    status=version.status.value,
                )
            )
        return product, version

    async def record_submission(
        self, product: Product, version: ProductVersion, decision: Decision, actor: str, reason: str | None
    ) -> ProductView:
        """What the listing stage decided: listed, held for an administrator (`review`), or rejected."""
        version.submitted_at = clock.now()
        if decision == Decision.ACCEPTED:
            await self._list(product, version, actor=actor, reason=None)
        elif decision == Decision.REVIEW:
            await self._set_version_status(product, version, VersionStatus.UNDER_REVIEW, actor, reason)
        else:
            await self._set_version_status(product, version, VersionStatus.REJECTED, actor, reason)
        return await self.catalog.view_of(product, version.version)

    async def decide(self, admin: Principal, product_id: uuid.UUID, decision: str, reason: str) -> ProductView:
        product = await self.repository.lock_product(product_id)
        if product is None:
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        version = await self.repository.version(product.id, product.latest_version)
        assert version is not None
        if version.status != VersionStatus.UNDER_REVIEW:
            raise Conflict(
                Message(
                    "catalog.version-not-under-review",
                    "version {version} is {status}; there is nothing to decide",
                    version=version.version,
                    status=version.status.value,
                )
            )
        if decision == "approve":
            await self._list(product, version, actor=admin.actor, reason=reason)
        else:
            await self._set_version_status(product, version, VersionStatus.REJECTED, admin.actor, reason)
        return await self.catalog.view_of(product, version.version)

    async def delist(self, principal: Principal, product_id: uuid.UUID, reason: str) -> ProductView:
        product = await self.repository.lock_product(product_id)
        if product is None or not (principal.is_admin or await self.catalog.is_owner(principal, product)):
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        if not principal.is_admin:
            await self.catalog.require_provider_member(principal, product.organization_id)
            if (
                principal.is_api_key
                or await self.accounts.member_role(principal, product.organization_id) not in MANAGING_ROLES
            ):
                raise Forbidden(
                    Message("catalog.delist-by-managers", "only the provider's owners and admins may delist")
                )
        if product.status != ProductStatus.LISTED or product.listed_version is None:
            raise Conflict(Message("catalog.product-not-listed", "only a listed product can be delisted"))
        listed = await self.repository.version(product.id, product.listed_version)
        assert listed is not None
        listed.status = VersionStatus.DELISTED
        product.status = ProductStatus.DELISTED
        product.listed_version = None
        product.updated_at = clock.now()
        await self.repository.flush()
        await self.audit.record(
            actor=principal.actor,
            action="product.delisted",
            object_type="product",
            object_id=product.id,
            payload={"version": listed.version, "reason": reason},
        )
        await self._event(EventType.PRODUCT_DELISTED, product, version=listed.version)
        return await self.catalog.view_of(product, product.latest_version)

    async def _list(self, product: Product, version: ProductVersion, *, actor: str, reason: str | None) -> None:
        """List a version; the caller holds the product's row lock, so the licence count moves safely."""
        previous = None
        if product.listed_version is not None and product.listed_version != version.version:
            previous = await self.repository.version(product.id, product.listed_version)
            assert previous is not None
            previous.status = VersionStatus.SUPERSEDED
        limit = licence_limit(version.details)
        if limit is None:
            product.licences_remaining = None
        elif product.licences_remaining is None:
            product.licences_remaining = limit
        elif previous is not None and (previous_limit := licence_limit(previous.details)) is not None:
            # A new version changes how many licences exist, not how many were sold.
            product.licences_remaining = max(0, product.licences_remaining + limit - previous_limit)
        version.listed_at = clock.now()
        product.listed_version = version.version
        await self.repository.add_search_terms(vocabulary(version.search_text))
        await self._set_version_status(product, version, VersionStatus.LISTED, actor, reason)

    async def _set_version_status(
        self, product: Product, version: ProductVersion, status: VersionStatus, actor: str, reason: str | None
    ) -> None:
        previous = version.status
        version.status = status
        version.decision_reason = reason
        version.updated_at = product.updated_at = clock.now()
        product.status = _product_status(product, status)
        await self.repository.flush()
        await self.audit.record(
            actor=actor,
            action="product.status_changed",
            object_type="product",
            object_id=product.id,
            payload={"version": version.version, "from": previous.value, "to": status.value, "reason": reason},
        )
        event_type = _VERSION_EVENTS.get(status)
        if event_type is not None:
            await self._event(event_type, product, version=version.version)

    async def regrade(self, admin: Principal, product_id: uuid.UUID, grade: str, reason: str) -> ProductView:
        """An administrator's classification decision (DSL Art. 21: the grade of data can be set by the
        authorities' catalogues after it was listed) applies to every version of the product, the sold
        ones included, so delivery re-checks them under the new grade. Core data is delisted at once."""
        if not admin.is_admin or admin.is_api_key:
            raise Forbidden(Message("auth.administrators-only", "platform administrators only"))
        product = await self.repository.lock_product(product_id)
        if product is None:
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        previous = await self.repository.regrade_versions(product.id, grade)
        product.updated_at = clock.now()
        await self.audit.record(
            actor=admin.actor,
            action="product.regraded",
            object_type="product",
            object_id=product.id,
            payload={"grade": grade, "previous_grades": sorted(previous), "reason": reason},
        )
        await self._event(EventType.PRODUCT_REGRADED, product, grade=grade)
        if grade == "core" and product.status == ProductStatus.LISTED:
            await self.delist(admin, product_id, f"graded core data: {reason}")
        return await self.catalog.view_of(product, product.latest_version)

    async def _event(self, event_type: EventType, product: Product, **facts: object) -> None:
        """The product's event, for its provider."""
        await self.events.record(
            event_type,
            subject_type="product",
            subject_id=product.id,
            parties=[product.organization_id],
            payload={
                "product_id": str(product.id),
                "organization_id": str(product.organization_id),
                "status": product.status.value,
                "listed_version": product.listed_version,
                **facts,
            },
        )


# The events of a version's review: held for an administrator, listed, rejected.
_VERSION_EVENTS = {
    VersionStatus.UNDER_REVIEW: EventType.PRODUCT_HELD,
    VersionStatus.LISTED: EventType.PRODUCT_LISTED,
    VersionStatus.REJECTED: EventType.PRODUCT_REJECTED,
}


def _product_status(product: Product, version_status: VersionStatus) -> ProductStatus:
    """A product stays listed while an older version is listed, whatever happens to a newer draft."""
    if version_status == VersionStatus.LISTED:
        return ProductStatus.LISTED
    if product.listed_version is not None:
        return ProductStatus.LISTED
    return {
        VersionStatus.UNDER_REVIEW: ProductStatus.UNDER_REVIEW,
        VersionStatus.REJECTED: ProductStatus.REJECTED,
    }.get(version_status, ProductStatus.DRAFT)


def licence_limit(details: dict[str, Any]) -> int | None:
    """How many licences a version's terms allow in all: one if exclusive, else max_licences (None: no limit)."""
    licence = details.get("licence") or {}
    if licence.get("exclusive"):
        return 1
    limit = licence.get("max_licences")
    return int(limit) if limit is not None else None

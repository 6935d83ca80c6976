"""Catalog use cases: describe a product, price it, attach its sample, read it, find it for sale."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Organization, OrganizationKind
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.catalog.dcat import CatalogEntry
from marketplace.catalog.models import (
    EDITABLE_VERSION_STATUSES,
    PlanKind,
    PricePlan,
    Product,
    ProductStatus,
    ProductVersion,
    Sample,
    VersionStatus,
)
from marketplace.catalog.repository import CatalogRepository, CatalogSearch, SearchFilters
from marketplace.catalog.samples import ParsedSample, StoredBlob
from marketplace.catalog.schemas import ProductCreate, ProductDescription, ProductDetails, ProductPatch
from marketplace.catalog.search_text import search_document
from marketplace.errors import Conflict, FieldsRequired, Forbidden, NotFound, Unprocessable
from marketplace.kit import clock
from marketplace.kit.i18n import Message

# Columns of ProductVersion that hold description fields; the details (`ProductDetails`) go to `details`.
COLUMN_FIELDS = frozenset(ProductDescription.model_fields) - frozenset(ProductDetails.model_fields)
ASSESSMENT_FIELDS = ("compliance_report", "risk_assessment", "cross_border_assessment")
# Fields a description cannot do without: a PATCH may change them, never set them to null.
REQUIRED_FIELDS = frozenset(
    name for name, field in ProductDescription.model_fields.items() if type(None) not in get_args(field.annotation)
)


@dataclass(frozen=True)
class ProductView:
    """A product as one caller sees it: the version shown, its plans and its sample."""

    product: Product
    version: ProductVersion
    plans: Sequence[PricePlan]
    sample: Sample | None
    provider: Organization | None = None  # when read with the rest (`for_sale`)


class CatalogService:
    def __init__(self, session: AsyncSession, accounts: AccountService, audit: AuditService) -> None:
        self.session = session
        self.repository = CatalogRepository(session)
        self.accounts = accounts
        self.audit = audit

    # who may do what

    async def require_provider_member(self, principal: Principal, organization_id: uuid.UUID) -> None:
        """Acting for a provider: a member (or a key) of a provider organisation."""
        organization = await self.accounts.visible_organization(principal, organization_id)
        role = await self.accounts.member_role(principal, organization_id)
        if role is None:
            raise NotFound(Message("accounts.organisation-not-found", "organisation not found"))
        if organization.kind != OrganizationKind.PROVIDER:
            raise Forbidden(Message("catalog.providers-only", "only provider organisations list data products"))

    async def owned_product(self, principal: Principal, product_id: uuid.UUID, *, lock: bool = False) -> Product:
        product = await (self.repository.lock_product(product_id) if lock else self.repository.get_product(product_id))
        if product is None or not await self.is_owner(principal, product):
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        await self.require_provider_member(principal, product.organization_id)
        return product

    async def is_owner(self, principal: Principal, product: Product) -> bool:
        return await self.accounts.member_role(principal, product.organization_id) is not None

    # reading

    async def view(self, principal: Principal, product_id: uuid.UUID) -> ProductView:
        """Owners and administrators see the newest version; everyone else the listed one, if any."""
        product = await self.repository.get_product(product_id)
        if product is None:
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        if principal.is_admin or await self.is_owner(principal, product):
            number = product.latest_version
        elif product.status == ProductStatus.LISTED and product.listed_version is not None:
            number = product.listed_version
        else:
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        return await self.view_of(product, number)

    async def queue(
        self, admin: Principal, status: ProductStatus, *, limit: int, offset: int
    ) -> tuple[list[ProductView], int]:
        """Administrators' queue of products in `status` (the listing queue: `under_review`), each at its
        newest version, the longest waiting first."""
        if not admin.is_admin:
            raise Forbidden(Message("catalog.administrators-only", "administrators only"))
        products, total = await self.repository.products_with_status(status, limit=limit, offset=offset)
        return [await self.view_of(product, product.latest_version) for product in products], total

    async def view_of(self, product: Product, number: int) -> ProductView:
        version = await self.repository.version(product.id, number)
        assert version is not None
        sample = await self.repository.get_sample(version.sample_id) if version.sample_id else None
        return ProductView(product, version, await self.repository.plans_of(version.id), sample)

    async def search(
        self, filters: SearchFilters, *, sort: str, limit: int, offset: int
    ) -> tuple[Sequence[tuple[ProductVersion, Product]], int, dict[str, dict[str, int]]]:
        """Listed products only: drafts and rejected versions are nobody else's business."""
        return await CatalogSearch(self.session).search(filters, sort=sort, limit=limit, offset=offset)

    # describing

    async def create(self, principal: Principal, data: ProductCreate) -> ProductView:
        await self.require_provider_member(principal, data.organization_id)
        product = Product(organization_id=data.organization_id)
        await self.repository.add(product)
        version = ProductVersion(
            product_id=product.id, organization_id=product.organization_id, version=1, **_version_values(data)
        )
        await self.repository.add(version)
        await self.audit.record(
            actor=principal.actor,
            action="product.created",
            object_type="product",
            object_id=product.id,
            payload={"organization_id": str(product.organization_id), "version": 1, "title": version.title},
        )
        return ProductView(product, version, [], None)

    async def update(self, principal: Principal, product_id: uuid.UUID, patch: ProductPatch) -> ProductView:
        product = await self.owned_product(principal, product_id, lock=True)
        version = await self.editable_version(product, principal)
        changes = patch.model_dump(exclude_unset=True, mode="json")
        if removed := sorted(field for field, value in changes.items() if value is None and field in REQUIRED_FIELDS):
            raise FieldsRequired(removed)
        merged = ProductDescription.model_validate({**_description_of(version), **changes})
        for field, value in _version_values(merged).items():
            setattr(version, field, value)
        version.updated_at = product.updated_at = clock.now()
        await self.repository.flush()
        await self.audit.record(
            actor=principal.actor,
            action="product.updated",
            object_type="product",
            object_id=product.id,
            payload={"version": version.version, "fields": sorted(changes)},
        )
        return await self.view_of(product, version.version)

    async def editable_version(self, product: Product, principal: Principal) -> ProductVersion:
        """The newest version if it is still a draft; a listed version is copied into a new draft."""
        latest = await self.repository.version(product.id, product.latest_version)
        assert latest is not None
        if latest.status in EDITABLE_VERSION_STATUSES:
            return latest
        if latest.status == VersionStatus.UNDER_REVIEW:
            raise Conflict(
                Message(
                    "catalog.version-under-review",
                    "this product's newest version is under review; wait for the decision",
                )
            )
        draft = ProductVersion(
            product_id=product.id,
            organization_id=product.organization_id,
            version=latest.version + 1,
            **{
                field: getattr(latest, field)
                for field in (
                    *COLUMN_FIELDS,
                    "details",
                    "sample_id",
                    "content_sha256",
                    "search_text",
                    "min_price_minor",
                )
            },
        )
        await self.repository.add(draft)
        for plan in await self.repository.plans_of(latest.id):
            copied = plan.model_dump(exclude={"id", "product_version_id", "created_at"})
            await self.repository.add(PricePlan(product_version_id=draft.id, **copied))
        product.latest_version = draft.version
        await self.audit.record(
            actor=principal.actor,
            action="product.version_created",
            object_type="product",
            object_id=product.id,
            payload={"version": draft.version, "from_version": latest.version},
        )
        return draft

    async def attach_sample(
        self, principal: Principal, product_id: uuid.UUID, blob: StoredBlob, parsed: ParsedSample
    ) -> Sample:
        """Attach an uploaded, parsed sample to the product's draft version."""
        product = await self.owned_product(principal, product_id, lock=True)
        version = await self.editable_version(product, principal)
        sample = Sample(
            product_id=product.id,
            sha256=blob.sha256,
            media_type=parsed.media_type,
            size_bytes=blob.size_bytes,
            rows=parsed.rows,
            columns=list(parsed.columns),
            head=[list(row) for row in parsed.head],
        )
        await self.repository.add(sample)
        version.sample_id = sample.id
        version.updated_at = product.updated_at = clock.now()
        await self.repository.flush()
        await self.audit.record(
            actor=principal.actor,
            action="product.sample_attached",
            object_type="product",
            object_id=product.id,
            payload={
                "version": version.version,
                "sample_id": str(sample.id),
                "sha256": blob.sha256,
                "rows": parsed.rows,
            },
        )
        return sample

    async def check_sample_upload(self, principal: Principal, product_id: uuid.UUID) -> None:
        """Refuse early (404/403/409) before storing anything for a caller who may not upload."""
        product = await self.owned_product(principal, product_id)
        latest = await self.repository.version(product.id, product.latest_version)
        if latest is not None and latest.status == VersionStatus.UNDER_REVIEW:
            raise Conflict(
                Message(
                    "catalog.version-under-review",
                    "this product's newest version is under review; wait for the decision",
                )
            )

    async def for_sale(self, product_id: uuid.UUID) -> ProductView:
        """The listed version of a product, as buyers trade it; a product not on sale does not exist.
        One query, which also reads the provider for `snapshot_of`."""
        found = await self.repository.on_sale(product_id)
        if found is None:
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        product, version, provider, sample, plans = found
        return ProductView(product, version, plans, sample, provider)

    async def on_sale_stamp(self, product_id: uuid.UUID) -> tuple[int | None, str] | None:
        """PostgreSQL: the licences left of a product on sale and the stamp of the rows its listing is read from
        (`for_sale`), for a caller that keeps what it made of them while they stay unchanged; None elsewhere.
        A product not on sale does not exist."""
        if self.session.get_bind().dialect.name != "postgresql":
            return None
        found = await self.repository.offer(product_id)
        if found is None:
            raise NotFound(Message("catalog.product-not-found", "product not found"))
        return found

    async def reserve_licences(self, product_id: uuid.UUID, quantity: int) -> bool:
        """Take licences of a product whose licences are limited; False when fewer are left."""
        return await self.repository.reserve_licences(product_id, quantity)

    async def release_licences(self, product_id: uuid.UUID, quantity: int) -> None:
        """Give back licences an order reserved (none reserved: nothing to do)."""
        if quantity:
            await self.repository.release_licences(product_id, quantity)

    async def version_view(self, product_id: uuid.UUID, version_id: uuid.UUID) -> ProductView:
        """One version of a product as it is now, whatever its status (a version sold stays deliverable)."""
        product = await self.repository.get_product(product_id)
        version = await self.repository.version_by_id(version_id)
        assert product is not None
        assert version is not None
        assert version.product_id == product.id
        return await self.view_of(product, version.version)

    async def sold_terms(self, version_id: uuid.UUID, plan_id: uuid.UUID) -> tuple[dict[str, Any], int | None, bool]:
        """The licence terms of a version as sold, its plan's period in days, and whether the plan renews at the
        end of each period (a subscription)."""
        version = await self.repository.version_by_id(version_id)
        assert version is not None
        plan = next((p for p in await self.repository.plans_of(version_id) if p.id == plan_id), None)
        terms = version.details.get("licence")
        period_days = plan.period_days if plan is not None else None
        renews = plan is not None and plan.kind == PlanKind.SUBSCRIPTION and bool(plan.period_days)
        return (dict(terms) if isinstance(terms, dict) else {}), period_days, renews

    async def version_details(self, version_id: uuid.UUID) -> dict[str, Any]:
        """A version's declared details: delivery reads its fields and its computation terms."""
        version = await self.repository.version_by_id(version_id)
        assert version is not None
        return dict(version.details)

    async def plan(self, plan_id: uuid.UUID) -> PricePlan:
        plan = await self.repository.get_plan(plan_id)
        assert plan is not None
        return plan

    async def dataset_version(self, principal: Principal, product_id: uuid.UUID, number: int | None) -> ProductVersion:
        """The version a provider uploads the full dataset of (default: the newest); owners only."""
        product = await self.owned_product(principal, product_id)
        await self.require_provider_member(principal, product.organization_id)
        version = await self.repository.version(product.id, number or product.latest_version)
        if version is None:
            raise NotFound(Message("catalog.version-not-found", "version not found"))
        return version

    async def register_digest(self, principal: Principal, version: ProductVersion, sha256: str) -> None:
        """Record the dataset's sha256 as the version's content digest, once: it is what delivery
        integrity (S6) checks every delivered file against. A digest already registered never changes,
        so a listed version keeps delivering what was sold; registering the first one does not change
        what the listing described."""
        if version.content_sha256 is not None and version.content_sha256 != sha256:
            raise Conflict(
                Message(
                    "catalog.digest-differs",
                    "this version's registered content digest differs from the uploaded dataset",
                ),
                registered_sha256=version.content_sha256,
            )
        if version.content_sha256 is None:
            version.content_sha256 = sha256
            version.updated_at = clock.now()
            await self.repository.flush()
            await self.audit.record(
                actor=principal.actor,
                action="product.content_registered",
                object_type="product",
                object_id=version.product_id,
                payload={"version": version.version, "content_sha256": sha256},
            )

    # the DCAT catalog feed (public)

    async def catalog_feed(self, *, limit: int, offset: int) -> tuple[list[CatalogEntry], int]:
        """One page of the listed catalog: listed versions with their plans and providers."""
        rows, total = await self.repository.listed_versions(limit=limit, offset=offset)
        plans = await self.repository.plans_of_versions([version.id for _, version, _, _ in rows])
        entries = [
            CatalogEntry(product, version, plans.get(version.id, []), provider, media_type)
            for product, version, provider, media_type in rows
        ]
        return entries, total


def _version_values(data: ProductDescription) -> dict[str, Any]:
    """A description as a version's columns and details, once its privacy terms are found consistent."""
    _check_computation(data)
    values = data.model_dump(mode="json", exclude={"organization_id"})
    details = {k: v for k, v in values.items() if k not in COLUMN_FIELDS}
    document = search_document(data.title, data.description, " ".join(data.tags), data.category, data.industry_code)
    return {**{k: v for k, v in values.items() if k in COLUMN_FIELDS}, "details": details, "search_text": document}


class PrivacyTermsInconsistent(Unprocessable):
    code = "privacy-terms-inconsistent"
    title = "The privacy terms are not consistent"


def _check_computation(description: ProductDescription) -> None:
    """Refuse, before anything is saved, privacy terms that do not fit together (the schema checks each alone)."""
    if description.computation and (problems := description.computation.privacy_problems()):
        inconsistent = Message(
            "catalog.privacy-terms-inconsistent",
            "the privacy terms do not fit together: {problems}",
            problems=[problem["message"] for problem in problems],
        )
        raise PrivacyTermsInconsistent(inconsistent, errors=problems)


def _description_of(version: ProductVersion) -> dict[str, Any]:
    return {**{field: getattr(version, field) for field in COLUMN_FIELDS}, **version.details}

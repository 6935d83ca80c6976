"""Catalog use cases: describe a product, price it, submit it to the listing stage, review it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import MANAGING_ROLES, Organization, OrganizationKind, Scope
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService, organization_facts
from marketplace.audit.service import AuditService
from marketplace.catalog.dcat import CatalogEntry
from marketplace.catalog.models import (
    EDITABLE_VERSION_STATUSES,
    PricePlan,
    Product,
    ProductStatus,
    ProductVersion,
    Sample,
    VersionStatus,
)
from marketplace.catalog.repository import CatalogRepository, CatalogSearch, SearchFilters
from marketplace.catalog.samples import ParsedSample, StoredBlob
from marketplace.catalog.schemas import PlanCreate, ProductCreate, ProductDescription, ProductPatch
from marketplace.catalog.search_text import search_document
from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.service import ComplianceService
from marketplace.compliance.snapshots import Assessment, PlanFacts, ProductFacts, SampleFacts, Snapshot
from marketplace.errors import Conflict, Forbidden, NotFound
from marketplace.kit import clock

# Columns of ProductVersion that hold description fields; the other fields go to `details`.
COLUMN_FIELDS = frozenset(
    {
        "title",
        "description",
        "tags",
        "category",
        "industry_code",
        "regions",
        "grade",
        "contains_personal_info",
        "data_source",
        "permitted_scenarios",
        "delivery_modes",
    }
)
ASSESSMENT_FIELDS = ("compliance_report", "risk_assessment", "cross_border_assessment")


@dataclass(frozen=True)
class ProductView:
    """A product as one caller sees it: the version shown, its plans and its sample."""

    product: Product
    version: ProductVersion
    plans: Sequence[PricePlan]
    sample: Sample | None
    provider: Organization | None = None  # when read with the rest (`for_sale`)


class CatalogService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = CatalogRepository(session)
        self.accounts = AccountService(session)
        self.audit = AuditService(session)

    # who may do what

    async def _require_provider_member(self, principal: Principal, organization_id: uuid.UUID) -> None:
        """Acting for a provider: a member (or a key with catalog:write) of a provider organisation."""
        organization = await self.accounts.visible_organization(principal, organization_id)
        principal.require_scope(Scope.CATALOG_WRITE)
        role = await self.accounts.member_role(principal, organization_id)
        if role is None:
            raise NotFound("organisation not found")
        if organization.kind != OrganizationKind.PROVIDER:
            raise Forbidden("only provider organisations list data products")

    async def _owned_product(self, principal: Principal, product_id: uuid.UUID, *, lock: bool = False) -> Product:
        product = await (self.repository.lock_product(product_id) if lock else self.repository.get_product(product_id))
        if product is None or not await self._is_owner(principal, product):
            raise NotFound("product not found")
        await self._require_provider_member(principal, product.organization_id)
        return product

    async def _is_owner(self, principal: Principal, product: Product) -> bool:
        return await self.accounts.member_role(principal, product.organization_id) is not None

    # reading

    async def view(self, principal: Principal, product_id: uuid.UUID) -> ProductView:
        """Owners and administrators see the newest version; everyone else the listed one, if any."""
        product = await self.repository.get_product(product_id)
        if product is None:
            raise NotFound("product not found")
        if principal.is_admin or await self._is_owner(principal, product):
            number = product.latest_version
        elif product.status == ProductStatus.LISTED and product.listed_version is not None:
            number = product.listed_version
        else:
            raise NotFound("product not found")
        return await self._view(product, number)

    async def _view(self, product: Product, number: int) -> ProductView:
        version = await self.repository.version(product.id, number)
        assert version is not None
        sample = await self.repository.get_sample(version.sample_id) if version.sample_id else None
        return ProductView(product, version, await self.repository.plans_of(version.id), sample)

    async def search(
        self, principal: Principal, filters: SearchFilters, *, sort: str, limit: int, offset: int
    ) -> tuple[Sequence[tuple[ProductVersion, Product]], int, dict[str, dict[str, int]]]:
        """Listed products only: drafts and rejected versions are nobody else's business."""
        principal.require_scope(Scope.CATALOG_READ)
        return await CatalogSearch(self.session).search(filters, sort=sort, limit=limit, offset=offset)

    # describing

    async def create(self, principal: Principal, data: ProductCreate) -> ProductView:
        await self._require_provider_member(principal, data.organization_id)
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
        product = await self._owned_product(principal, product_id, lock=True)
        version = await self._editable_version(product, principal)
        changes = patch.model_dump(exclude_unset=True, mode="json")
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
        return await self._view(product, version.version)

    async def add_plan(self, principal: Principal, product_id: uuid.UUID, data: PlanCreate) -> PricePlan:
        product = await self._owned_product(principal, product_id, lock=True)
        version = await self._editable_version(product, principal)
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

    async def _editable_version(self, product: Product, principal: Principal) -> ProductVersion:
        """The newest version if it is still a draft; a listed version is copied into a new draft."""
        latest = await self.repository.version(product.id, product.latest_version)
        assert latest is not None
        if latest.status in EDITABLE_VERSION_STATUSES:
            return latest
        if latest.status == VersionStatus.UNDER_REVIEW:
            raise Conflict("this product's newest version is under review; wait for the decision")
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
        product = await self._owned_product(principal, product_id, lock=True)
        version = await self._editable_version(product, principal)
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
        product = await self._owned_product(principal, product_id)
        latest = await self.repository.version(product.id, product.latest_version)
        if latest is not None and latest.status == VersionStatus.UNDER_REVIEW:
            raise Conflict("this product's newest version is under review; wait for the decision")

    # the listing stage

    async def submit(
        self, principal: Principal, product_id: uuid.UUID, rulebook: Rulebook
    ) -> tuple[ProductView, StoredVerdict]:
        product = await self._owned_product(principal, product_id, lock=True)
        version = await self.repository.version(product.id, product.latest_version)
        assert version is not None
        if version.status not in EDITABLE_VERSION_STATUSES:
            raise Conflict(f"version {version.version} is {version.status.value}; only a draft can be submitted")
        snapshot = await self.listing_snapshot(product, version)
        stored, verdict = await ComplianceService(self.session, rulebook).judge(
            stage=Stage.LISTING, subject_type="product", subject_id=product.id, snapshot=snapshot, actor=principal.actor
        )
        version.submitted_at = clock.now()
        reason = "; ".join(f.check for f in verdict.failures()) or None
        if verdict.decision == Decision.ACCEPTED:
            await self._list(product, version, actor=principal.actor, reason=None)
        elif verdict.decision == Decision.REVIEW:
            await self._set_version_status(product, version, VersionStatus.UNDER_REVIEW, principal.actor, reason)
        else:
            await self._set_version_status(product, version, VersionStatus.REJECTED, principal.actor, reason)
        return await self._view(product, version.version), stored

    async def decide(self, admin: Principal, product_id: uuid.UUID, decision: str, reason: str) -> ProductView:
        product = await self.repository.lock_product(product_id)
        if product is None:
            raise NotFound("product not found")
        version = await self.repository.version(product.id, product.latest_version)
        assert version is not None
        if version.status != VersionStatus.UNDER_REVIEW:
            raise Conflict(f"version {version.version} is {version.status.value}; there is nothing to decide")
        if decision == "approve":
            await self._list(product, version, actor=admin.actor, reason=reason)
        else:
            await self._set_version_status(product, version, VersionStatus.REJECTED, admin.actor, reason)
        return await self._view(product, version.version)

    async def delist(self, principal: Principal, product_id: uuid.UUID, reason: str) -> ProductView:
        product = await self.repository.lock_product(product_id)
        if product is None or not (principal.is_admin or await self._is_owner(principal, product)):
            raise NotFound("product not found")
        if not principal.is_admin:
            await self._require_provider_member(principal, product.organization_id)
            if (
                principal.is_api_key
                or await self.accounts.member_role(principal, product.organization_id) not in MANAGING_ROLES
            ):
                raise Forbidden("only the provider's owners and admins may delist")
        if product.status != ProductStatus.LISTED or product.listed_version is None:
            raise Conflict("only a listed product can be delisted")
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
        return await self._view(product, product.latest_version)

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

    async def for_sale(self, product_id: uuid.UUID) -> ProductView:
        """The listed version of a product, as buyers trade it; a product not on sale does not exist.
        One query, which also reads the provider for `snapshot_of`."""
        found = await self.repository.on_sale(product_id)
        if found is None:
            raise NotFound("product not found")
        product, version, provider, sample, plans = found
        return ProductView(product, version, plans, sample, provider)

    async def reserve_licences(self, product_id: uuid.UUID, quantity: int) -> bool:
        """Take licences of a product whose licences are limited; False when fewer are left."""
        return await self.repository.reserve_licences(product_id, quantity)

    async def release_licences(self, product_id: uuid.UUID, quantity: int) -> None:
        await self.repository.release_licences(product_id, quantity)

    # delivery

    async def version_snapshot(self, product_id: uuid.UUID, version_id: uuid.UUID) -> Snapshot:
        """The provider and one version of the product as they are now: what the delivery stage judges,
        so that a regrading or a suspension after the sale is seen."""
        product = await self.repository.get_product(product_id)
        version = await self.repository.version_by_id(version_id)
        assert product is not None
        assert version is not None
        assert version.product_id == product.id
        return await self.snapshot_of(await self._view(product, version.version))

    async def sold_terms(self, version_id: uuid.UUID, plan_id: uuid.UUID) -> tuple[dict[str, Any], int | None]:
        """The licence terms of a version as sold, and its plan's period in days (subscriptions)."""
        version = await self.repository.version_by_id(version_id)
        assert version is not None
        plan = next((p for p in await self.repository.plans_of(version_id) if p.id == plan_id), None)
        terms = version.details.get("licence")
        return (dict(terms) if isinstance(terms, dict) else {}), (plan.period_days if plan is not None else None)

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
        product = await self._owned_product(principal, product_id)
        await self._require_provider_member(principal, product.organization_id)
        version = await self.repository.version(product.id, number or product.latest_version)
        if version is None:
            raise NotFound("version not found")
        return version

    async def register_digest(self, principal: Principal, version: ProductVersion, sha256: str) -> None:
        """Record the dataset's sha256 as the version's content digest, once: it is what delivery
        integrity (S6) checks every delivered file against. A digest already registered never changes,
        so a listed version keeps delivering what was sold; registering the first one does not change
        what the listing described."""
        if version.content_sha256 is not None and version.content_sha256 != sha256:
            raise Conflict(
                "this version's registered content digest differs from the uploaded dataset",
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

    async def regrade(self, admin: Principal, product_id: uuid.UUID, grade: str, reason: str) -> ProductView:
        """An administrator's classification decision (DSL Art. 21: the grade of data can be set by the
        authorities' catalogues after it was listed) applies to every version of the product, the sold
        ones included, so delivery re-checks them under the new grade. Core data is delisted at once."""
        if not admin.is_admin or admin.is_api_key:
            raise Forbidden("platform administrators only")
        product = await self.repository.lock_product(product_id)
        if product is None:
            raise NotFound("product not found")
        previous = await self.repository.regrade_versions(product.id, grade)
        product.updated_at = clock.now()
        await self.audit.record(
            actor=admin.actor,
            action="product.regraded",
            object_type="product",
            object_id=product.id,
            payload={"grade": grade, "previous_grades": sorted(previous), "reason": reason},
        )
        if grade == "core" and product.status == ProductStatus.LISTED:
            await self.delist(admin, product_id, f"graded core data: {reason}")
        return await self._view(product, product.latest_version)

    async def listing_snapshot(self, product: Product, version: ProductVersion) -> Snapshot:
        return await self.snapshot_of(await self._view(product, version.version))

    async def snapshot_of(self, view: ProductView) -> Snapshot:
        """The provider and the product as the rulebook sees them."""
        product, version, plans, sample = view.product, view.version, view.plans, view.sample
        provider = view.provider or await self.accounts.organization(product.organization_id)
        assessors = {
            uuid.UUID(str(report["assessor_organization_id"])): False for report in _assessments(version.details)
        }
        for assessor_id in assessors:
            assessors[assessor_id] = await self.accounts.is_admitted_assessor(assessor_id)
        return Snapshot(
            provider=organization_facts(provider),
            product=product_facts(product, version, plans, sample, assessors),
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


def _version_values(data: ProductDescription) -> dict[str, Any]:
    values = data.model_dump(mode="json", exclude={"organization_id"})
    details = {k: v for k, v in values.items() if k not in COLUMN_FIELDS}
    document = search_document(data.title, data.description, " ".join(data.tags), data.category, data.industry_code)
    return {**{k: v for k, v in values.items() if k in COLUMN_FIELDS}, "details": details, "search_text": document}


def _description_of(version: ProductVersion) -> dict[str, Any]:
    return {**{field: getattr(version, field) for field in COLUMN_FIELDS}, **version.details}


def _assessments(details: dict[str, Any]) -> list[dict[str, Any]]:
    reports = [details[name] for name in ASSESSMENT_FIELDS if details.get(name)]
    if details.get("valuation"):
        reports.append(details["valuation"]["assessment"])
    return reports


def _assessment_facts(report: dict[str, Any] | None, assessors: dict[uuid.UUID, bool]) -> Assessment | None:
    if not report:
        return None
    assessor_id = uuid.UUID(str(report["assessor_organization_id"]))
    return Assessment(
        assessor_id=str(assessor_id),
        assessor_admitted=assessors.get(assessor_id, False),
        issued_on=report["issued_on"],
        valid_until=report.get("valid_until"),
        reference=report.get("reference"),
    )


def product_facts(
    product: Product,
    version: ProductVersion,
    plans: Sequence[PricePlan],
    sample: Sample | None,
    assessors: dict[uuid.UUID, bool],
) -> ProductFacts:
    """What the rulebook sees of one product version."""
    details = dict(version.details)
    valuation = details.pop("valuation", None)
    if valuation:
        valuation = {**valuation, "assessment": _assessment_facts(valuation["assessment"], assessors)}
    for name in ASSESSMENT_FIELDS:
        details[name] = _assessment_facts(details.get(name), assessors)
    for name in ("update_frequency", "time_coverage_start", "time_coverage_end", "computation"):
        details.pop(name, None)
    return ProductFacts.model_validate(
        {
            **details,
            **{field: getattr(version, field) for field in COLUMN_FIELDS - {"description", "tags"}},
            "id": str(product.id),
            "version": version.version,
            "valuation": valuation,
            "plans": [
                PlanFacts(
                    id=str(plan.id),
                    kind=plan.kind.value,
                    price_minor=plan.price_minor,
                    currency=plan.currency,
                    pricing_basis=plan.pricing_basis,
                    period_days=plan.period_days,
                    unit_price_minor=plan.unit_price_minor,
                )
                for plan in plans
            ],
            "sample": SampleFacts(
                sha256=sample.sha256,
                rows_total=sample.rows,
                columns=tuple(sample.columns),
                rows=tuple(tuple(row) for row in sample.head),
            )
            if sample
            else None,
            "content_sha256": version.content_sha256,
        }
    )

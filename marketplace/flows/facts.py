"""What the rulebook sees: the facts of organisations and product versions, gathered once per judgement and
frozen into a snapshot (the rules themselves never read the database)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from marketplace.accounts.models import Organization
from marketplace.accounts.service import AccountService
from marketplace.catalog.models import PricePlan, Product, ProductVersion, Sample
from marketplace.catalog.service import ASSESSMENT_FIELDS, COLUMN_FIELDS, CatalogService, ProductView
from marketplace.compliance.parts import Part, part_of
from marketplace.compliance.snapshots import (
    Assessment,
    OrganizationFacts,
    PlanFacts,
    ProductFacts,
    SampleFacts,
    Snapshot,
)

# An organisation's facts kept for the same values: a process holds this many (a buyer's facts are the same on
# each of its orders, and made and digested once).
ORGANIZATION_FACTS_KEPT = 4_096


def organization_facts(organization: Organization) -> OrganizationFacts:
    """What the rulebook sees of an organisation."""
    return organization_part(organization)[0]


def organization_part(organization: Organization) -> tuple[OrganizationFacts, Part]:
    """What the rulebook sees of an organisation, and the snapshot part it makes in any of its roles: made once
    per process for the same values."""
    intermediary = organization.intermediary or {}
    facts = {
        "id": str(organization.id),
        "name": organization.name,
        "kind": organization.kind.value,
        "uscc": organization.uscc,
        "jurisdiction": organization.jurisdiction,
        "status": organization.status.value,
        "dsmm_level": organization.dsmm_level,
        "max_data_grade": organization.max_data_grade.value,
        "penalties_last_3y": organization.penalties_last_3y,
        "last_penalty_on": organization.last_penalty_on,
        "security_certifications": tuple(organization.security_certifications),
        "intermediary_roles": tuple(intermediary.get("roles", ())),
        "fee_disclosure": intermediary.get("fee_disclosure"),
        "retains_no_traded_data": intermediary.get("retains_no_traded_data"),
    }
    return _facts_and_part(tuple(facts.items()))


@functools.lru_cache(maxsize=ORGANIZATION_FACTS_KEPT)
def _facts_and_part(fields: tuple[tuple[str, Any], ...]) -> tuple[OrganizationFacts, Part]:
    """The facts of these (name, value) pairs, and their part: the pairs are the cache's key."""
    facts = OrganizationFacts(**dict(fields))
    return facts, part_of("organization", facts)


class Facts:
    """Gathers the facts of a provider and a product version from the accounts and catalog domains."""

    def __init__(self, accounts: AccountService, catalog: CatalogService) -> None:
        self.accounts = accounts
        self.catalog = catalog

    async def listing(self, view: ProductView) -> Snapshot:
        """The provider and the product version of `view` as the rulebook sees them."""
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

    async def version_now(self, product_id: uuid.UUID, version_id: uuid.UUID) -> Snapshot:
        """The provider and one version of the product as they are now: what the delivery stage judges, so
        that a regrading or a suspension after the sale is seen."""
        return await self.listing(await self.catalog.version_view(product_id, version_id))


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
    for name in ("update_frequency", "time_coverage_start", "time_coverage_end"):
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

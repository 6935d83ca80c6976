"""Request bodies built from the demonstration data, for the demo, the tests and the benchmarks: an
organisation, a product complete enough for the listing stage, a price plan, licence terms. Keyword
changes vary one field; what a listable product declares is decided here alone."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any, Final

from marketplace.demo.records import PRODUCTS, DemoProduct
from marketplace.kit import clock
from marketplace.kit.identifiers import uscc_check_char

# The demo's first product: general data, sold once, delivered by file or API, with a clean sample.
ROAD_TRAFFIC: Final = PRODUCTS[0]

_PLAN_TERMS: Final[dict[str, dict[str, Any]]] = {
    "one_time": {"pricing_basis": "cost"},
    "subscription": {"pricing_basis": "market", "period_days": 30},
    "metered": {"pricing_basis": "market", "unit_price_minor": 5, "included_calls": 10_000},
}
_uscc_serials = itertools.count(1)


def valid_uscc() -> str:
    """A unified social credit code with a correct check character, unique per call in this process."""
    body = f"91520100MA{next(_uscc_serials) % 10**7:07d}"
    return body + uscc_check_char(body)


def organization_body(kind: str = "buyer", **changes: Any) -> dict[str, Any]:
    """An organisation of `kind` in Guiyang at DSMM level 3, under a name and a code of its own."""
    return {
        "name": f"{kind.title()} Org {uuid.uuid4().hex[:6]}",
        "uscc": valid_uscc(),
        "kind": kind,
        "jurisdiction": "520100",
        "dsmm_level": 3,
        **changes,
    }


def licence_terms(**changes: Any) -> dict[str, Any]:
    """A year's licence for internal analysis and product development."""
    return {"scope": "internal analysis and product development", "term_days": 365, **changes}


def plan_body(price_minor: int, kind: str = "one_time", **changes: Any) -> dict[str, Any]:
    """A price plan in CNY: a one-time price set from cost; or, set from the market, a subscription of
    30 days or a metered plan (10,000 calls included, 5 minor units a call beyond)."""
    return {"kind": kind, "price_minor": price_minor, "currency": "CNY", **_PLAN_TERMS[kind], **changes}


def product_body(
    organization_id: uuid.UUID | str,
    product: DemoProduct = ROAD_TRAFFIC,
    *,
    serial: int = 1,
    assessor_id: uuid.UUID | str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """`product` as `organization_id` describes it for the listing stage: registered under `serial`, with its
    licence terms, cost declaration, quality and provenance, the reports of `assessor_id` its grade or its
    personal information calls for, and how it processes the personal information it holds."""
    today = clock.now().date()
    collected_since = f"{today.year - 1}-01-01"
    issued_on = (today - timedelta(days=60)).isoformat()
    body: dict[str, Any] = {
        "organization_id": str(organization_id),
        "title": product.title,
        "description": product.description,
        "tags": list(product.tags),
        "category": product.category,
        "industry_code": product.industry_code,
        "regions": list(product.regions),
        "grade": product.grade,
        "data_source": "self_generated",
        "lawful_source_commitment": True,
        "registration_number": f"GZDE-2026-{serial:06d}",
        "permitted_scenarios": list(product.permitted_scenarios),
        "delivery_modes": list(product.delivery_modes),
        "licence": licence_terms(),
        "dispute_route": "arbitration",
        "cost": _cost(product.price_minor * 6 // 10) if product.cost_declared else None,
        "quality": {
            "normativity": 0.95,
            "completeness": 0.97,
            "accuracy": 0.94,
            "consistency": 0.96,
            "timeliness": 0.92,
            "accessibility": 0.99,
        },
        "provenance": {
            "source_entity": "the provider's own sensors and stations",
            "activities": [
                {"name": "collection", "performed_by": "provider", "started_at": f"{collected_since}T00:00:00Z"}
            ],
        },
        "update_frequency": product.update_frequency,
        "time_coverage_start": collected_since,
        **_reports(product, serial, assessor_id, issued_on),
    }
    if product.personal_fields:
        body |= _personal_information(product, issued_on)
    if product.computation is not None:
        body["computation"] = product.computation
    return body | changes


def _cost(total_minor: int) -> dict[str, Any]:
    """A historical-cost declaration whose components add up to the total exactly (R4)."""
    return {
        "collection_minor": total_minor * 4 // 10,
        "processing_minor": total_minor * 3 // 10,
        "storage_minor": total_minor // 10,
        "compliance_minor": total_minor // 10,
        "other_minor": total_minor - total_minor * 9 // 10,
        "total_minor": total_minor,
        "currency": "CNY",
        "method": "historical_cost",
    }


def _reports(product: DemoProduct, serial: int, assessor_id: uuid.UUID | str | None, issued_on: str) -> dict[str, Any]:
    """The compliance report that important, core or personal data needs, and the risk assessment that
    important data needs."""
    wanted = {}
    if product.grade in ("important", "core") or product.personal_fields:
        wanted["compliance_report"] = "CR"
    if product.grade == "important":
        wanted["risk_assessment"] = "RA"
    if wanted and assessor_id is None:
        raise ValueError(f"{product.title} needs an assessor's reports: pass assessor_id")
    return {
        field: {
            "assessor_organization_id": str(assessor_id),
            "issued_on": issued_on,
            "reference": f"GZDS-{code}-{serial:04d}",
        }
        for field, code in wanted.items()
    }


def _personal_information(product: DemoProduct, issued_on: str) -> dict[str, Any]:
    """Personal information processed on consent for the permitted scenarios, assessed and de-identified."""
    return {
        "contains_personal_info": True,
        "pi_legal_basis": "consent",
        "consented_purposes": list(product.permitted_scenarios),
        "separate_consent_for_provision": True,
        "pi_impact_assessment_on": issued_on,
        "deidentification_techniques": ["pseudonymisation", "generalisation", "k-anonymity"],
        "fields": [
            {"name": name, "personal": True, "purposes": list(product.permitted_scenarios)}
            for name in product.personal_fields
        ],
    }

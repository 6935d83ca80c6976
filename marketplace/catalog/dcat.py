"""The listed catalog as a DCAT 3 (W3C Data Catalog Vocabulary, version 3) JSON-LD document, within the
DCAT-AP 3.0 application profile (controlled vocabularies as IRIs, licences on distributions).

Pure: no database, no web framework. Each listed product version is a `dcat:Dataset` with one
`dcat:Distribution` per delivery mode (a file download, an API behind a `dcat:DataService`, or
privacy computing, where the data never leaves the provider), its provider as a `foaf:Organization`
identified by its unified social credit code, its regions as GB/T 2260 division codes and its price
plans as ODRL offers (`odrl:hasPolicy`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from marketplace.accounts.models import Organization
from marketplace.catalog.models import PricePlan, Product, ProductVersion

CATALOG_PATH: Final = "/api/v1/catalog.jsonld"
PRODUCTS_PATH: Final = "/api/v1/products"
# GB/T 2260 divisions as URIs: the exchange's own code-list namespace (no public registry mints them).
DIVISION_BASE: Final = "urn:gbt2260:"
INDUSTRY_BASE: Final = "urn:gbt4754:"

CONTEXT: Final[dict[str, Any]] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "schema": "https://schema.org/",
    "dct:modified": {"@type": "xsd:dateTime"},
    "dct:issued": {"@type": "xsd:dateTime"},
    "dct:spatial": {"@type": "@id"},
    "dcat:theme": {"@type": "@id"},
    "dcat:accessURL": {"@type": "@id"},
    "dcat:endpointURL": {"@type": "@id"},
    "dcat:landingPage": {"@type": "@id"},
    "dct:conformsTo": {"@type": "@id"},
    "dct:accrualPeriodicity": {"@type": "@id"},
    "dct:format": {"@type": "@id"},
    "dcat:mediaType": {"@type": "@id"},
    "foaf:homepage": {"@type": "@id"},
}

# DCAT-AP names controlled vocabularies for these: the EU Publications Office's frequency and file-type
# tables, and IANA's media types. A declared update frequency outside the table is not published.
FREQUENCY_BASE: Final = "http://publications.europa.eu/resource/authority/frequency/"
FREQUENCIES: Final = {
    "continuous": "UPDATE_CONT",
    "realtime": "UPDATE_CONT",
    "hourly": "HOURLY",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "biweekly": "BIWEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "annual": "ANNUAL",
    "yearly": "ANNUAL",
    "irregular": "IRREG",
    "never": "NEVER",
}
FILE_TYPE_BASE: Final = "http://publications.europa.eu/resource/authority/file-type/"
# JSON lines has no entry of its own in the file-type table: each line is a JSON text.
FILE_TYPES: Final = {"text/csv": "CSV", "application/x-ndjson": "JSON"}
MEDIA_TYPE_BASE: Final = "https://www.iana.org/assignments/media-types/"
# Only registered media types have an IANA page (the x- types are unregistered by definition).
REGISTERED_MEDIA_TYPES: Final = frozenset({"text/csv"})

DELIVERY_TITLES: Final = {
    "file": "File download",
    "api": "API access",
    "privacy_computing": "Privacy computing",
}
PLAN_DESCRIPTIONS: Final = {
    "one_time": "one-time purchase",
    "subscription": "subscription",
    "metered": "metered use",
    "free": "free of charge",
}


@dataclass(frozen=True)
class CatalogEntry:
    """One listed product version, with what the catalog document shows of it."""

    product: Product
    version: ProductVersion
    plans: Sequence[PricePlan]
    provider: Organization
    sample_media_type: str | None = None


def catalog_jsonld(
    entries: Sequence[CatalogEntry],
    base_url: str,
    *,
    total: int | None = None,
    limit: int | None = None,
    offset: int = 0,
    title: str = "Data exchange marketplace catalog",
) -> dict[str, Any]:
    """A DCAT 3 catalog of the given listed versions; `total`/`limit`/`offset` describe the page."""
    base = base_url.rstrip("/")
    catalog_id = base + CATALOG_PATH
    catalog: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": catalog_id,
        "@type": "dcat:Catalog",
        "dct:title": title,
        "dct:description": "Data products listed on the exchange after the listing-stage compliance review.",
        "dct:publisher": {
            "@id": base + "/#exchange",
            "@type": ["foaf:Agent", "foaf:Organization"],
            "foaf:name": title,
        },
        "foaf:homepage": base + "/",
        "dcat:dataset": [_dataset(entry, base) for entry in entries],
    }
    if total is not None:
        catalog["schema:numberOfItems"] = total
    if limit is not None:
        catalog["schema:offset"] = offset
        catalog["schema:limit"] = limit
    return catalog


def _dataset(entry: CatalogEntry, base: str) -> dict[str, Any]:
    version, product = entry.version, entry.product
    dataset_id = f"{base}{PRODUCTS_PATH}/{product.id}"
    details = version.details
    dataset: dict[str, Any] = {
        "@id": dataset_id,
        "@type": "dcat:Dataset",
        "dct:identifier": str(product.id),
        "dct:title": version.title,
        "dct:description": version.description,
        "dcat:keyword": list(version.tags),
        "dcat:theme": [f"{INDUSTRY_BASE}{version.industry_code}"],
        "dct:subject": version.category,
        "dct:spatial": [f"{DIVISION_BASE}{code}" for code in version.regions],
        "dct:coverage": list(version.regions),
        "dct:publisher": _publisher(entry.provider),
        "dct:issued": _moment(version.listed_at or version.created_at),
        "dct:modified": _moment(version.updated_at),
        "dcat:version": str(version.version),
        "dcat:landingPage": dataset_id,
        "dct:accessRights": _access_rights(version),
        "dcat:distribution": [_distribution(entry, dataset_id, mode) for mode in version.delivery_modes],
    }
    frequency = FREQUENCIES.get(str(details.get("update_frequency", "")).lower())
    if frequency:
        dataset["dct:accrualPeriodicity"] = FREQUENCY_BASE + frequency
    start, end = details.get("time_coverage_start"), details.get("time_coverage_end")
    if start or end:
        period: dict[str, Any] = {"@type": "dct:PeriodOfTime"}
        if start:
            period["dcat:startDate"] = {"@value": start, "@type": "xsd:date"}
        if end:
            period["dcat:endDate"] = {"@value": end, "@type": "xsd:date"}
        dataset["dct:temporal"] = period
    if entry.plans:
        licence = details.get("licence")
        dataset["odrl:hasPolicy"] = [_offer(plan, dataset_id, entry.provider, licence) for plan in entry.plans]
    return dataset


def _publisher(organization: Organization) -> dict[str, Any]:
    return {
        "@id": f"urn:uscc:{organization.uscc}",
        "@type": ["foaf:Agent", "foaf:Organization"],
        "foaf:name": organization.name,
        "dct:identifier": organization.uscc,
        "dct:spatial": f"{DIVISION_BASE}{organization.jurisdiction}",
    }


def _access_rights(version: ProductVersion) -> dict[str, Any]:
    grade = version.grade
    personal = " Contains de-identified personal information." if version.contains_personal_info else ""
    scenarios = ", ".join(version.permitted_scenarios)
    return {
        "@type": "dct:RightsStatement",
        "rdfs:label": f"restricted ({grade} data)",
        "dct:description": (
            f"Data graded {grade} (GB/T 43697-2024); sold only through the exchange to admitted buyers, "
            f"for the permitted scenarios: {scenarios}.{personal}"
        ),
    }


def _licence(licence: dict[str, Any]) -> dict[str, Any]:
    terms = [f"scope: {licence.get('scope', '')}"]
    if licence.get("term_days"):
        terms.append(f"term: {licence['term_days']} days")
    terms.append("resale allowed" if licence.get("resale_allowed") else "no resale")
    terms.append("sublicensing allowed" if licence.get("sublicensing_allowed") else "no sublicensing")
    if licence.get("exclusive"):
        terms.append("exclusive")
    if licence.get("max_licences"):
        terms.append(f"at most {licence['max_licences']} licences")
    return {"@type": "dct:LicenseDocument", "rdfs:label": "; ".join(terms)}


def _distribution(entry: CatalogEntry, dataset_id: str, mode: str) -> dict[str, Any]:
    distribution: dict[str, Any] = {
        "@id": f"{dataset_id}#distribution-{mode}",
        "@type": "dcat:Distribution",
        "dct:identifier": mode,
        "dct:title": DELIVERY_TITLES.get(mode, mode),
        "dcat:accessURL": dataset_id,
    }
    licence = entry.version.details.get("licence")
    if licence:
        distribution["dct:license"] = _licence(licence)
    if mode == "file":
        media_type = entry.sample_media_type or "text/csv"
        if media_type in REGISTERED_MEDIA_TYPES:
            distribution["dcat:mediaType"] = MEDIA_TYPE_BASE + media_type
        if media_type in FILE_TYPES:
            distribution["dct:format"] = FILE_TYPE_BASE + FILE_TYPES[media_type]
        distribution["dct:description"] = "Delivered as a file after purchase, verified by its sha256."
    elif mode == "api":
        distribution["dcat:accessService"] = {
            "@id": f"{dataset_id}#api",
            "@type": "dcat:DataService",
            "dct:title": f"{entry.version.title} API",
            "dcat:endpointURL": dataset_id,
            "dcat:servesDataset": {"@id": dataset_id},
        }
        distribution["dct:description"] = "Queried through an API under the buyer's licence; nothing is copied."
    elif mode == "privacy_computing":
        distribution["dct:description"] = (
            "Used through privacy computing (federated computation, secure multi-party computation or a trusted "
            "execution environment): the raw data never leaves the provider; the buyer receives results only."
        )
    return distribution


def _offer(plan: PricePlan, dataset_id: str, provider: Organization, licence: dict[str, Any] | None) -> dict[str, Any]:
    price = f"{plan.price_minor / 100:.2f} {plan.currency}"
    description = f"{PLAN_DESCRIPTIONS.get(plan.kind.value, plan.kind.value)}: {price}"
    if plan.period_days:
        description += f" per {plan.period_days} days"
    if plan.unit_price_minor is not None:
        description += f", {plan.unit_price_minor / 100:.2f} {plan.currency} per call"
    if plan.included_calls:
        description += f", {plan.included_calls} calls included"
    offer: dict[str, Any] = {
        "@id": f"{dataset_id}#plan-{plan.id}",
        "@type": "odrl:Offer",
        "dct:identifier": str(plan.id),
        "dct:description": description,
        "odrl:target": {"@id": dataset_id},
        "odrl:assigner": {"@id": f"urn:uscc:{provider.uscc}"},
        "odrl:permission": [{"@type": "odrl:Permission", "odrl:action": {"@id": "odrl:use"}}],
        "schema:price": {"@value": f"{plan.price_minor / 100:.2f}", "@type": "xsd:decimal"},
        "schema:priceCurrency": plan.currency,
    }
    if licence and not licence.get("resale_allowed"):
        offer["odrl:prohibition"] = [{"@type": "odrl:Prohibition", "odrl:action": {"@id": "odrl:distribute"}}]
    return offer


def _moment(value: Any) -> str:
    text: str = value.isoformat()
    return text.replace("+00:00", "Z")

"""The listed catalog as DCAT 3 JSON-LD: the pure builder, and GET /api/v1/catalog.jsonld."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyshacl
import pytest
import rdflib

from marketplace.accounts.models import Organization, OrganizationKind
from marketplace.catalog.dcat import CONTEXT, CatalogEntry, catalog_jsonld
from marketplace.catalog.models import PlanKind, PricePlan, Product, ProductStatus, ProductVersion, VersionStatus
from marketplace.demo import seed_demo
from marketplace.demo.factories import plan_body, product_body
from marketplace.web.pagination import MAX_PAGE_SIZE
from tests.catalog.test_products import CLEAN_SAMPLE, create, submit, upload
from tests.fixtures.api import Api, Person

BASE = "https://exchange.example"
WHEN = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)

# JSON-LD 1.1 keywords (https://www.w3.org/TR/json-ld11/#keywords)
JSONLD_KEYWORDS = frozenset(
    {
        "@base",
        "@container",
        "@context",
        "@direction",
        "@graph",
        "@id",
        "@import",
        "@included",
        "@index",
        "@json",
        "@language",
        "@list",
        "@nest",
        "@none",
        "@prefix",
        "@propagate",
        "@protected",
        "@reverse",
        "@set",
        "@type",
        "@value",
        "@version",
        "@vocab",
    }
)


def entry(modes: list[str], *, licence: dict[str, Any] | None = None, personal: bool = False) -> CatalogEntry:
    provider = Organization(
        name="贵阳交通数据科技有限公司",
        uscc="91520100MA6E1T0A0X",
        kind=OrganizationKind.PROVIDER,
        jurisdiction="520100",
    )
    product = Product(organization_id=provider.id, status=ProductStatus.LISTED, listed_version=2, latest_version=2)
    version = ProductVersion(
        product_id=product.id,
        organization_id=provider.id,
        version=2,
        status=VersionStatus.LISTED,
        title="贵阳市主干道实时路况",
        description="Five-minute speed and volume per road segment.",
        tags=["traffic", "交通"],
        category="transport",
        industry_code="5431",
        regions=["520100", "520300"],
        grade="general",
        contains_personal_info=personal,
        data_source="self_generated",
        permitted_scenarios=["traffic_planning"],
        delivery_modes=modes,
        details={
            "licence": licence,
            "update_frequency": "daily",
            "time_coverage_start": "2025-01-01",
            "time_coverage_end": None,
        },
        listed_at=WHEN,
        created_at=WHEN,
        updated_at=WHEN,
    )
    plans = [
        PricePlan(product_version_id=version.id, kind=PlanKind.ONE_TIME, price_minor=1_200_000, currency="CNY"),
        PricePlan(
            product_version_id=version.id,
            kind=PlanKind.SUBSCRIPTION,
            price_minor=300_000,
            currency="CNY",
            period_days=30,
        ),
    ]
    return CatalogEntry(product, version, plans, provider, "text/csv")


def undefined_keys(document: Any, context: dict[str, Any]) -> list[str]:
    """Every key that is neither a JSON-LD keyword, a term of the context nor a compact IRI whose
    prefix the context defines: such a key would be dropped on expansion."""
    prefixes = {term for term, value in context.items() if isinstance(value, str) and value.endswith(("#", "/"))}
    bad: list[str] = []

    def visit(node: Any, in_context: bool = False) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if in_context:
                    continue
                compact = ":" in key and key.split(":", 1)[0] in prefixes
                if not (key in JSONLD_KEYWORDS or key in context or compact):
                    bad.append(key)
                if key != "@context":
                    visit(value)

    visit(document)
    # the context's own term definitions use defined prefixes too
    for term, value in context.items():
        if ":" in term and term.split(":", 1)[0] not in prefixes:
            bad.append(term)
        if isinstance(value, dict):
            for inner in value.values():
                compact = isinstance(inner, str) and ":" in inner and not inner.startswith("@")
                if compact and str(inner).split(":", 1)[0] not in prefixes:
                    bad.append(inner)
    return bad


def test_the_catalog_is_a_dcat_catalog_with_the_namespaces() -> None:
    document = catalog_jsonld([entry(["file", "api"])], BASE + "/", total=1, limit=50, offset=0)
    context = document["@context"]
    for prefix, iri in {
        "dcat": "http://www.w3.org/ns/dcat#",
        "dct": "http://purl.org/dc/terms/",
        "foaf": "http://xmlns.com/foaf/0.1/",
        "vcard": "http://www.w3.org/2006/vcard/ns#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "odrl": "http://www.w3.org/ns/odrl/2/",
    }.items():
        assert context[prefix] == iri
    assert (document["@type"], document["@id"]) == ("dcat:Catalog", BASE + "/api/v1/catalog.jsonld")
    assert document["dct:title"]
    assert document["dct:publisher"]["@type"] == ["foaf:Agent", "foaf:Organization"]
    assert document["schema:numberOfItems"] == 1


def test_a_dataset_carries_its_description_publisher_and_licence() -> None:
    item = entry(["file"], licence={"scope": "internal analysis", "term_days": 365, "resale_allowed": False})
    dataset = catalog_jsonld([item], BASE)["dcat:dataset"][0]
    assert dataset["@type"] == "dcat:Dataset"
    assert dataset["@id"] == f"{BASE}/api/v1/products/{item.product.id}"
    assert dataset["dct:identifier"] == str(item.product.id)
    assert (dataset["dct:title"], dataset["dcat:version"]) == ("贵阳市主干道实时路况", "2")
    assert dataset["dcat:keyword"] == ["traffic", "交通"]
    assert dataset["dcat:theme"] == ["urn:gbt4754:5431"]
    assert dataset["dct:spatial"] == ["urn:gbt2260:520100", "urn:gbt2260:520300"]
    assert dataset["dct:coverage"] == ["520100", "520300"]
    assert dataset["dct:modified"] == "2026-11-01T08:00:00Z"
    publisher = dataset["dct:publisher"]
    assert publisher["@type"] == ["foaf:Agent", "foaf:Organization"]
    assert (publisher["foaf:name"], publisher["dct:identifier"]) == ("贵阳交通数据科技有限公司", "91520100MA6E1T0A0X")
    assert "general" in dataset["dct:accessRights"]["dct:description"]
    assert dataset["dct:accrualPeriodicity"] == "http://publications.europa.eu/resource/authority/frequency/DAILY"
    [distribution] = dataset["dcat:distribution"]  # DCAT-AP: the licence is the distribution's
    assert "internal analysis" in distribution["dct:license"]["rdfs:label"]
    assert "term: 365 days" in distribution["dct:license"]["rdfs:label"]
    assert dataset["dct:temporal"]["dcat:startDate"] == {"@value": "2025-01-01", "@type": "xsd:date"}
    offers = dataset["odrl:hasPolicy"]
    assert [o["@type"] for o in offers] == ["odrl:Offer", "odrl:Offer"]
    assert offers[0]["schema:price"] == {"@value": "12000.00", "@type": "xsd:decimal"}
    assert offers[1]["dct:description"] == "subscription: 3000.00 CNY per 30 days"
    assert offers[0]["odrl:prohibition"][0]["odrl:action"] == {"@id": "odrl:distribute"}


@pytest.mark.parametrize(
    "modes", [["file"], ["api"], ["privacy_computing"], ["file", "api", "privacy_computing"], ["api", "file"]]
)
def test_every_dataset_has_one_distribution_per_delivery_mode(modes: list[str]) -> None:
    dataset = catalog_jsonld([entry(modes)], BASE)["dcat:dataset"][0]
    distributions = dataset["dcat:distribution"]
    assert [d["dct:identifier"] for d in distributions] == modes
    assert all(d["@type"] == "dcat:Distribution" for d in distributions)
    assert len({d["@id"] for d in distributions}) == len(modes)
    by_mode = {d["dct:identifier"]: d for d in distributions}
    if "file" in by_mode:
        assert by_mode["file"]["dct:format"] == "http://publications.europa.eu/resource/authority/file-type/CSV"
        assert by_mode["file"]["dcat:mediaType"] == "https://www.iana.org/assignments/media-types/text/csv"
    if "api" in by_mode:
        service = by_mode["api"]["dcat:accessService"]
        assert service["@type"] == "dcat:DataService"
        assert service["dcat:servesDataset"] == {"@id": dataset["@id"]}
    if "privacy_computing" in by_mode:
        assert "never leaves the provider" in by_mode["privacy_computing"]["dct:description"]
        assert "dcat:accessService" not in by_mode["privacy_computing"]


def test_the_document_is_valid_json_ld() -> None:
    document = catalog_jsonld(
        [entry(["file", "api", "privacy_computing"], licence={"scope": "research", "exclusive": True}), entry(["api"])],
        BASE,
        total=2,
        limit=50,
        offset=0,
    )
    assert document["@context"] == CONTEXT
    assert undefined_keys(document, document["@context"]) == []
    assert json.loads(json.dumps(document, ensure_ascii=False)) == document
    # every node identifier is an absolute IRI or a compact IRI with a defined prefix
    ids: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            ids.extend([node["@id"]] if "@id" in node else [])
            for key, value in node.items():
                if key != "@context":
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(document)
    assert ids
    assert all(i.startswith(("https://", "urn:", "odrl:")) for i in ids), ids


def test_the_checker_notices_an_undefined_term() -> None:
    document = catalog_jsonld([entry(["file"])], BASE)
    document["dcat:dataset"][0]["price"] = 1
    document["dcat:dataset"][0]["ex:thing"] = 2
    assert undefined_keys(document, document["@context"]) == ["price", "ex:thing"]


def test_an_empty_catalog_has_no_datasets() -> None:
    document = catalog_jsonld([], BASE)
    assert document["dcat:dataset"] == []
    assert undefined_keys(document, document["@context"]) == []


# through the API


@pytest.fixture
async def provider(api: Api) -> tuple[Person, dict[str, Any]]:
    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    return owner, organization


async def listed_product(api: Api, owner: Person, organization: dict[str, Any], **changes: Any) -> dict[str, Any]:
    product = await create(api, owner, product_body(organization["id"], **changes))
    plan = await api.client.post(
        f"/api/v1/products/{product['id']}/plans", json=plan_body(1_200_000), headers=owner.headers
    )
    assert plan.status_code == 201, plan.text
    assert (await upload(api, owner, product["id"], "sample.csv", CLEAN_SAMPLE, "text/csv")).status_code == 201
    await api.host_dataset(owner, product["id"])
    result = await submit(api, owner, product["id"])
    assert result["status"] == "listed", result["verdict"]
    return product


async def test_the_feed_lists_listed_products_only_without_authentication(
    api: Api, provider: tuple[Person, dict[str, Any]]
) -> None:
    owner, organization = provider
    listed = await listed_product(api, owner, organization, delivery_modes=["file", "api"])
    draft = await create(api, owner, product_body(organization["id"], title="A draft"))
    rejected = await create(api, owner, product_body(organization["id"], grade="core", title="Core data"))
    assert (await submit(api, owner, rejected["id"]))["status"] == "rejected"

    response = await api.client.get("/api/v1/catalog.jsonld")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/ld+json")
    document = response.json()
    assert undefined_keys(document, document["@context"]) == []
    identifiers = [d["dct:identifier"] for d in document["dcat:dataset"]]
    assert identifiers == [listed["id"]]
    assert draft["id"] not in identifiers
    assert rejected["id"] not in identifiers
    dataset = document["dcat:dataset"][0]
    assert dataset["@id"] == f"http://testserver/api/v1/products/{listed['id']}"
    assert [d["dct:identifier"] for d in dataset["dcat:distribution"]] == ["file", "api"]
    assert dataset["dct:publisher"]["dct:identifier"] == organization["uscc"]
    assert dataset["dct:spatial"] == ["urn:gbt2260:520100"]
    assert dataset["odrl:hasPolicy"][0]["schema:priceCurrency"] == "CNY"
    assert document["schema:numberOfItems"] == 1

    # an edit in progress does not change what the feed shows; a delisted product leaves it
    await api.client.patch(f"/api/v1/products/{listed['id']}", json={"title": "Edited"}, headers=owner.headers)
    again = (await api.client.get("/api/v1/catalog.jsonld")).json()
    assert [d["dct:title"] for d in again["dcat:dataset"]] == [listed["title"]]
    delisted = await api.client.post(
        f"/api/v1/products/{listed['id']}/delist", json={"reason": "retired"}, headers=owner.headers
    )
    assert delisted.status_code == 200, delisted.text
    assert (await api.client.get("/api/v1/catalog.jsonld")).json()["dcat:dataset"] == []


async def test_the_feed_is_paginated_with_a_hard_maximum(api: Api, provider: tuple[Person, dict[str, Any]]) -> None:
    owner, organization = provider
    ids = {(await listed_product(api, owner, organization, title=f"Product {n}"))["id"] for n in range(3)}
    first = (await api.client.get("/api/v1/catalog.jsonld", params={"limit": 2})).json()
    second = (await api.client.get("/api/v1/catalog.jsonld", params={"limit": 2, "offset": 2})).json()
    assert (first["schema:numberOfItems"], len(first["dcat:dataset"]), len(second["dcat:dataset"])) == (3, 2, 1)
    assert {d["dct:identifier"] for d in first["dcat:dataset"] + second["dcat:dataset"]} == ids
    too_many = await api.client.get("/api/v1/catalog.jsonld", params={"limit": MAX_PAGE_SIZE + 1})
    assert too_many.status_code == 400
    assert (await api.client.get("/api/v1/catalog.jsonld", params={"offset": -1})).status_code == 400


def test_an_identifier_is_a_uuid() -> None:
    document = catalog_jsonld([entry(["api"])], BASE)
    uuid.UUID(document["dcat:dataset"][0]["dct:identifier"])


SHAPES = Path(__file__).with_name("dcat_ap_3.ttl")


async def test_the_demo_catalog_conforms_to_dcat_ap_3(api: Api) -> None:
    """The whole demo catalog, read as RDF from the feed, against DCAT-AP 3.0's constraints (as SHACL shapes):
    mandatory properties, cardinalities, classes, and IRIs from the controlled vocabularies."""
    async with api.services() as services:
        await seed_demo(services, only_if_empty=True)
    feed = await api.client.get("/api/v1/catalog.jsonld", params={"limit": MAX_PAGE_SIZE})
    assert feed.status_code == 200
    graph = rdflib.Graph().parse(data=feed.content, format="json-ld")
    datasets = set(graph.subjects(rdflib.RDF.type, rdflib.URIRef("http://www.w3.org/ns/dcat#Dataset")))
    assert len(datasets) == feed.json()["schema:numberOfItems"] >= 20
    shapes = rdflib.Graph().parse(SHAPES)
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert conforms, report


def test_the_shapes_catch_what_dcat_ap_forbids() -> None:
    """The shapes are not vacuous: a literal where the profile wants a vocabulary IRI, a dataset without a
    title, a distribution without an access URL each fail."""
    document = catalog_jsonld([entry(["file"])], BASE)
    dataset = document["dcat:dataset"][0]
    dataset["dct:accrualPeriodicity"] = {"@value": "daily"}
    del dataset["dct:title"]
    del dataset["dcat:distribution"][0]["dcat:accessURL"]
    graph = rdflib.Graph().parse(data=json.dumps(document), format="json-ld")
    conforms, results, _ = pyshacl.validate(graph, shacl_graph=rdflib.Graph().parse(SHAPES))
    assert not conforms
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    paths = {str(path) for path in results.objects(None, sh.resultPath)}
    assert paths == {
        "http://purl.org/dc/terms/accrualPeriodicity",
        "http://purl.org/dc/terms/title",
        "http://www.w3.org/ns/dcat#accessURL",
    }

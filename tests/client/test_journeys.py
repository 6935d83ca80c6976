"""Three journeys through the typed client generated from the served document, and nothing else: the provider
(create -> plan -> sample -> dataset -> listing preview -> submit -> listed), the buyer (search -> product
-> preview -> order -> pay -> delivery -> download, and an API-mode data call), the administrator (the
admission and listing queues, a held trade, the export, the audit chain, the books). Only the first
administrator is made outside the API, as an operator makes one with the CLI."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from marketplace.demo.factories import organization_body, plan_body, product_body
from marketplace.jobs import sequence_audit
from marketplace.kit.identifiers import uscc_check_char
from tests.catalog.test_products import CLEAN_SAMPLE
from tests.client.conftest import Client
from tests.fixtures.api import DATASET, PASSWORD, Api

PRICE_MINOR = 1_200_000


async def call(typed: Client, tag: str, name: str, expected: int, /, **arguments: Any) -> Any:
    """One operation of the generated client, which must answer `expected`; its answer parsed into the
    client's own types."""
    response = await typed.operation(tag, name).asyncio_detailed(**arguments)
    assert response.status_code == expected, (name, response.status_code, response.content)
    return response.parsed


async def person(typed: Client, name: str) -> Any:
    """Somebody who registered and signed in, as an authenticated client."""
    email = f"{name.lower()}.{uuid.uuid4().hex[:8]}@example.com"
    anonymous = typed.anonymous()
    register = typed.model("RegisterRequest")(email=email, password=PASSWORD, name=name)
    await call(typed, "accounts", "auth_register", 201, client=anonymous, body=register)
    return await signed_in(typed, email)


async def signed_in(typed: Client, email: str) -> Any:
    body = typed.model("TokenRequest")(email=email, password=PASSWORD)
    token = await call(typed, "accounts", "auth_token", 200, client=typed.anonymous(), body=body)
    return typed.as_(token.access_token)


async def administrator(typed: Client, api: Api) -> Any:
    email = f"admin.{uuid.uuid4().hex[:8]}@example.com"
    async with api.services() as services:
        await services.accounts.create_admin(email=email, password=PASSWORD, name="Admin", actor="test")
    return await signed_in(typed, email)


async def organization(typed: Client, owner: Any, kind: str, **fields: Any) -> tuple[Any, Any]:
    """An organisation created and sent to admission: (the organisation, the admission's answer)."""
    body = typed.model("OrganizationCreate").from_dict(organization_body(kind, dsmm_level=3, **fields))
    created = await call(typed, "organizations", "organization_create", 201, client=owner, body=body)
    admission = await call(
        typed, "organizations", "organization_admission", 200, client=owner, organization_id=created.id
    )
    return created, admission


@dataclass
class Draft:
    product: Any
    plan: Any
    dataset_sha256: str


async def described(typed: Client, owner: Any, organization_id: uuid.UUID, **changes: Any) -> Draft:
    """A product with its plan, its sample and its full dataset, not yet submitted."""
    body = typed.model("ProductCreate").from_dict(product_body(organization_id, **changes))
    product = await call(typed, "catalog", "product_create", 201, client=owner, body=body)
    plan = await call(
        typed,
        "catalog",
        "product_add_plan",
        201,
        client=owner,
        product_id=product.id,
        body=typed.model("PlanCreate").from_dict(plan_body(PRICE_MINOR)),
    )
    files = typed.package.types.File
    sample = typed.model("SampleUpload")(
        file=files(payload=io.BytesIO(CLEAN_SAMPLE), file_name="sample.csv", mime_type="text/csv")
    )
    read = await call(typed, "catalog", "product_upload_sample", 201, client=owner, product_id=product.id, body=sample)
    assert read.rows > 0
    dataset = await call(
        typed,
        "delivery",
        "dataset_upload",
        201,
        client=owner,
        product_id=product.id,
        # the client's async calls send the payload with httpx's AsyncClient, which takes bytes, not a sync file
        body=files(payload=DATASET, file_name="dataset.csv", mime_type="text/csv"),
    )
    assert dataset.sha256 == hashlib.sha256(DATASET).hexdigest()
    return Draft(product, plan, dataset.sha256)


async def submitted(typed: Client, owner: Any, draft: Draft) -> Any:
    return await call(typed, "catalog", "product_submit", 200, client=owner, product_id=draft.product.id)


def trade(typed: Client, draft: Draft, buyer_organization_id: uuid.UUID, mode: str = "file") -> Any:
    return typed.model("TradeRequest").from_dict(
        {
            "product_id": str(draft.product.id),
            "plan_id": str(draft.plan.id),
            "buyer_organization_id": str(buyer_organization_id),
            "scenario": "traffic_planning",
            "delivery_mode": mode,
            "quantity": 1,
            "accept_licence_terms": True,
        }
    )


async def placed(typed: Client, buyer: Any, request: Any) -> Any:
    key = str(uuid.uuid4())
    return await call(typed, "orders", "order_place", 201, client=buyer, body=request, idempotency_key=key)


async def paid(typed: Client, buyer: Any, order_id: uuid.UUID) -> Any:
    return await call(
        typed, "orders", "order_pay", 200, client=buyer, order_id=order_id, body=None, idempotency_key=str(uuid.uuid4())
    )


async def test_the_provider_lists_a_product(typed: Client) -> None:
    provider = await person(typed, "Provider")
    org, admission = await organization(typed, provider, "provider")
    assert admission.status.value == "admitted"
    draft = await described(typed, provider, org.id, delivery_modes=["file", "api"])

    preview = await call(typed, "catalog", "product_preview", 200, client=provider, product_id=draft.product.id)
    assert (preview.stage.value, preview.decision.value) == ("listing", "accepted")
    answer = await submitted(typed, provider, draft)
    assert answer.status.value == "listed"
    assert answer.verdict.decision == preview.decision
    assert [f.check for f in answer.verdict.findings] == [f.check for f in preview.findings]

    product = await call(typed, "catalog", "product_read", 200, client=provider, product_id=draft.product.id)
    assert product.status.value == "listed"
    verdicts = await call(typed, "catalog", "product_verdicts", 200, client=provider, product_id=draft.product.id)
    assert [v.decision.value for v in verdicts] == ["accepted"]


async def test_the_buyer_buys_downloads_and_calls_the_data(typed: Client) -> None:
    provider = await person(typed, "Provider")
    provider_org, _ = await organization(typed, provider, "provider")
    draft = await described(typed, provider, provider_org.id, delivery_modes=["file", "api"])
    assert (await submitted(typed, provider, draft)).status.value == "listed"
    buyer = await person(typed, "Buyer")
    buyer_org, admission = await organization(typed, buyer, "buyer")
    assert admission.status.value == "admitted"

    found = await call(typed, "catalog", "product_search", 200, client=buyer, q="traffic")
    assert draft.product.id in [item.id for item in found.items]
    product = await call(typed, "catalog", "product_read", 200, client=buyer, product_id=draft.product.id)
    assert [plan.id for plan in product.plans] == [draft.plan.id]

    request = trade(typed, draft, buyer_org.id)
    preview = await call(typed, "compliance", "trade_preview_preview", 200, client=buyer, body=request)
    assert preview.decision.value == "accepted"
    order = await placed(typed, buyer, request)
    assert (order.status.value, order.verdict.decision.value) == ("accepted", "accepted")
    assert order.amount_minor == PRICE_MINOR
    assert (await paid(typed, buyer, order.id)).status.value == "paid"

    delivery = await call(typed, "delivery", "order_delivery_delivery", 200, client=buyer, order_id=order.id)
    link = parse_qs(urlsplit(delivery.download_url).query)
    signed = {name: values[0] for name, values in link.items()}
    downloaded = await typed.operation("delivery", "download").asyncio_detailed(
        client=typed.anonymous(), licence_id=delivery.licence_id, **signed
    )
    assert downloaded.status_code == 200
    assert downloaded.content == DATASET
    shown = await call(typed, "orders", "order_show", 200, client=buyer, order_id=order.id)
    assert shown.status.value == "delivered"

    api_order = await placed(typed, buyer, trade(typed, draft, buyer_org.id, mode="api"))
    await paid(typed, buyer, api_order.id)
    access = await call(typed, "delivery", "order_delivery_delivery", 200, client=buyer, order_id=api_order.id)
    assert access.api_key
    rows = await call(
        typed, "delivery", "data_rows", 200, client=typed.as_(access.api_key), licence_id=access.licence_id, limit=3
    )
    table = list(csv.reader(io.StringIO(DATASET.decode())))
    assert rows.columns == table[0]
    assert [row[0] for row in rows.rows] == [row[0] for row in table[1:4]]  # the file's first rows, in order


async def test_the_administrator_works_the_queues_and_checks_the_books(typed: Client, api: Api) -> None:
    admin = await administrator(typed, api)
    statuses = typed.model("OrganizationStatus")

    # the admission queue: a USCC whose division code GB/T 2260 does not list is held for review (S1)
    provider = await person(typed, "Provider")
    code = "91999900MA6E1T0A0"
    held_org, admission = await organization(typed, provider, "provider", uscc=code + uscc_check_char(code))
    assert admission.status.value == "under_review"
    queue = await call(
        typed, "administration", "admin_accounts_organizations", 200, client=admin, status=statuses("under_review")
    )
    assert [o.id for o in queue.items] == [held_org.id]
    decision = typed.model("DecisionRequest").from_dict({"decision": "approve", "reason": "division renamed"})
    approved = await call(
        typed, "administration", "admin_accounts_decide", 200, client=admin, organization_id=held_org.id, body=decision
    )
    assert approved.status.value == "admitted"

    # the listing queue: a price far from its assessed reference price is held for review (R5)
    draft = await described(typed, provider, held_org.id, reference_price_minor=PRICE_MINOR // 10)
    assert (await submitted(typed, provider, draft)).status.value == "under_review"
    listing_queue = await call(typed, "administration", "admin_product_queue", 200, client=admin)
    assert [p.id for p in listing_queue.items] == [draft.product.id]
    listed = await call(
        typed,
        "administration",
        "admin_product_decide",
        200,
        client=admin,
        product_id=draft.product.id,
        body=typed.model("ProductDecision").from_dict({"decision": "approve", "reason": "appraisal outdated"}),
    )
    assert listed.status.value == "listed"

    # a held trade: the agreed price is as far from the reference (R5)
    buyer = await person(typed, "Buyer")
    buyer_org, _ = await organization(typed, buyer, "buyer")
    held = await placed(typed, buyer, trade(typed, draft, buyer_org.id))
    assert held.status.value == "pending_review"
    review = typed.model("Decision")("review")
    trades = await call(typed, "audit", "admin_trades_trades", 200, client=admin, outcome=review)
    assert [t.id for t in trades.items] == [held.id]
    accepted = await call(
        typed,
        "administration",
        "admin_order_decide",
        200,
        client=admin,
        order_id=held.id,
        body=typed.model("OrderDecision").from_dict({"decision": "approve", "reason": "price explained"}),
    )
    assert accepted.status.value == "accepted"
    await paid(typed, buyer, held.id)

    export = await typed.operation("audit", "admin_trades_export").asyncio_detailed(client=admin)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [(r["id"], r["status"], r["decision"]) for r in rows] == [(str(held.id), "paid", "review")]

    await sequence_audit(api.runtime())
    log = await call(typed, "audit", "audit_verify", 200, client=admin)
    assert (log.ok, log.first_broken_leaf) == (True, None)
    assert log.entries > 0
    books = await call(typed, "administration", "admin_ledger_check", 200, client=admin)
    assert (books.ok, books.imbalance_minor, books.escrow_checked) == (True, 0, True)
    assert books.escrow_mismatches == []

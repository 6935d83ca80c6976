"""File delivery: licences issued on payment, signed download links, the delivery-stage re-check."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from marketplace.accounts.principal import Principal
from marketplace.compliance.rulebook import load_rulebook
from marketplace.demo.factories import licence_terms
from marketplace.flows.delivery import DeliveryRefused
from marketplace.kit import clock
from tests.catalog.test_products import CLEAN_SAMPLE
from tests.delivery.conftest import Market
from tests.fixtures.api import Api


def link_parts(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, dict(parse_qsl(parts.query))


async def test_a_paid_order_is_delivered_by_a_signed_download(market: Market) -> None:
    product = await market.product()
    order_id = await market.paid_order(product)
    licence = await market.licence(order_id)
    assert licence["status"] == "active"
    assert licence["delivery_mode"] == "file"
    assert licence["terms"] | licence_terms() == licence["terms"]
    assert licence["ends_at"] is not None

    dataset = await market.host(product)  # hosted before it listed: the same file again changes nothing
    assert dataset["sha256"] == hashlib.sha256(CLEAN_SAMPLE).hexdigest()
    delivery = await market.delivery(order_id)
    assert delivery.status_code == 200, delivery.text
    body = delivery.json()
    assert body["mode"] == "file"
    assert body["sha256"] == dataset["sha256"]
    assert (await market.order(order_id))["status"] == "paid"  # a link is not a delivery yet

    download = await market.api.client.get(body["download_url"])
    assert download.status_code == 200, download.text
    assert download.content == CLEAN_SAMPLE
    assert download.headers["x-content-sha256"] == dataset["sha256"]
    digest = base64.b64encode(hashlib.sha256(CLEAN_SAMPLE).digest()).decode()
    assert download.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert (await market.order(order_id))["status"] == "delivered"

    again = await market.api.client.get(body["download_url"])
    assert again.status_code == 200
    receipts = await market.api.client.get(f"/api/v1/orders/{order_id}/receipts", headers=market.buyer.headers)
    assert [(r["kind"], r["content_sha256"]) for r in receipts.json()["items"]] == [
        ("download", dataset["sha256"]),
        ("download", dataset["sha256"]),
    ]
    audit = await market.api.client.get(
        "/api/v1/admin/audit", params={"object_id": licence["id"]}, headers=market.admin.headers
    )
    actions = [entry["action"] for entry in audit.json()["items"]]
    assert actions.count("licence.downloaded") == 2
    assert "licence.issued" in actions


async def test_only_the_buyer_takes_delivery(market: Market, api: Api) -> None:
    product = await market.product()
    order_id = await market.paid_order(product)
    assert (await market.delivery(order_id, market.provider)).status_code == 403
    stranger = await api.person("Stranger")
    await api.admitted_organization(stranger, market.admin, kind="buyer", dsmm_level=3)
    assert (await market.delivery(order_id, stranger)).status_code == 404
    unpaid = await market.api.client.post(
        "/api/v1/orders",
        json={
            "product_id": product.id,
            "plan_id": product.plan_id,
            "buyer_organization_id": market.buyer_org["id"],
            "scenario": "traffic_planning",
            "delivery_mode": "file",
            "quantity": 1,
            "accept_licence_terms": True,
        },
        headers=market.buyer.headers,
    )
    assert (await market.delivery(unpaid.json()["id"])).status_code == 409


async def test_a_product_graded_core_after_the_sale_delivers_nothing_and_names_r3(market: Market) -> None:
    product = await market.product()
    order_id = await market.paid_order(product)
    link = (await market.delivery(order_id)).json()["download_url"]

    regraded = await market.api.client.post(
        f"/api/v1/admin/products/{product.id}/grade",
        json={"grade": "core", "reason": "listed in the provincial core data catalogue"},
        headers=market.admin.headers,
    )
    assert regraded.status_code == 200, regraded.text
    assert regraded.json()["status"] == "delisted"

    refused = await market.delivery(order_id)
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["type"].endswith("delivery-refused")
    assert problem["licence_status"] == "revoked"
    assert any(f["rule_id"] == "R3" and f["outcome"] == "fail" for f in problem["findings"])
    assert "R3" in problem["detail"]
    # The revocation outlives the refused request; the link made before it is dead too.
    assert (await market.licence(order_id))["status"] == "revoked"
    download = await market.api.client.get(link)
    assert download.status_code == 403
    assert download.content != CLEAN_SAMPLE
    assert (await market.order(order_id))["status"] == "paid"
    verdicts = await market.api.client.get(
        "/api/v1/admin/audit",
        params={"object_id": (await market.licence(order_id))["id"]},
        headers=market.admin.headers,
    )
    assert {"verdict.recorded", "licence.revoked"} <= {e["action"] for e in verdicts.json()["items"]}


async def test_a_refund_after_a_dispute_revokes_the_licence(market: Market) -> None:
    product = await market.product()
    order_id = await market.paid_order(product)
    link = (await market.delivery(order_id)).json()["download_url"]
    disputed = await market.api.client.post(
        f"/api/v1/orders/{order_id}/dispute", json={"reason": "wrong region"}, headers=market.buyer.headers
    )
    assert disputed.status_code == 200, disputed.text
    resolved = await market.api.client.post(
        f"/api/v1/admin/orders/{order_id}/resolve-dispute",
        json={"outcome": "refund", "reason": "the data covers another region"},
        headers=market.admin.headers,
    )
    assert resolved.status_code == 200, resolved.text
    assert (await market.licence(order_id))["status"] == "revoked"
    assert (await market.api.client.get(link)).status_code == 403
    assert (await market.delivery(order_id)).status_code == 403


async def test_a_link_stops_working_when_its_person_leaves_the_buyer(market: Market) -> None:
    product = await market.product()
    order_id = await market.paid_order(product)
    link = (await market.delivery(order_id)).json()["download_url"]
    path, params = link_parts(link)
    # Another person's id in the link: the signature no longer matches.
    forged = {**params, "user": market.provider.id}
    assert (await market.api.client.get(f"{path}?{urlencode(forged)}")).status_code == 403
    disabled = await market.api.client.post(
        f"/api/v1/admin/users/{market.buyer.id}/status",
        json={"status": "disabled", "reason": "left the company"},
        headers=market.admin.headers,
    )
    assert disabled.status_code == 200, disabled.text
    assert (await market.api.client.get(link)).status_code == 403


async def test_a_suspended_provider_delivers_nothing(market: Market) -> None:
    product = await market.product()
    order_id = await market.paid_order(product)
    suspended = await market.api.client.post(
        f"/api/v1/admin/organizations/{market.provider_org['id']}/standing",
        json={"standing": "suspended", "reason": "data-trading penalty"},
        headers=market.admin.headers,
    )
    assert suspended.status_code == 200, suspended.text
    refused = await market.delivery(order_id)
    assert refused.status_code == 403, refused.text
    assert {f["check"] for f in refused.json()["findings"]} >= {"S6.provider-verified"}
    assert (await market.licence(order_id))["status"] == "revoked"
    # Reinstating the provider does not bring back a licence its verdict revoked.
    reinstated = await market.api.client.post(
        f"/api/v1/admin/organizations/{market.provider_org['id']}/standing",
        json={"standing": "admitted", "reason": "penalty lifted"},
        headers=market.admin.headers,
    )
    assert reinstated.status_code == 200, reinstated.text
    assert (await market.delivery(order_id)).json()["licence_status"] == "revoked"


async def test_a_licence_past_its_term_expires_and_delivers_nothing(market: Market, monkeypatch: Any) -> None:
    product = await market.product(licence=licence_terms(term_days=30))
    order_id = await market.paid_order(product)
    assert (await market.delivery(order_id)).status_code == 200
    later = clock.now() + timedelta(days=31)
    monkeypatch.setattr(clock, "now", lambda: later)
    refused = await market.delivery(order_id)
    assert refused.status_code == 403, refused.text
    assert refused.json()["licence_status"] == "expired"
    assert (await market.licence(order_id))["status"] == "expired"


async def test_a_review_suspends_the_licence_until_an_administrator_decides(market: Market, tmp_path: Path) -> None:
    """Under a rulebook that sends R3's failures to review, core data after the sale suspends the licence."""
    product = await market.product()
    order_id = await market.paid_order(product)
    regraded = await market.api.client.post(
        f"/api/v1/admin/products/{product.id}/grade",
        json={"grade": "core", "reason": "under reassessment"},
        headers=market.admin.headers,
    )
    assert regraded.status_code == 200, regraded.text
    config = tmp_path / "review.toml"
    config.write_text('[rules.R3]\nseverity = "review"\n')
    async with market.api.services(rulebook=load_rulebook(config)) as services:
        with pytest.raises(DeliveryRefused) as refused:
            await services.delivery.open(Principal(user_id=uuid.UUID(market.buyer.id)), uuid.UUID(order_id))
    assert refused.value.extra["licence_status"] == "suspended"
    licence = await market.licence(order_id)
    assert licence["status"] == "suspended"
    assert (await market.delivery(order_id)).json()["licence_status"] == "suspended"
    decided = await market.api.client.post(
        f"/api/v1/admin/licences/{licence['id']}/decision",
        json={"decision": "reinstate", "reason": "assessment found the grade wrong"},
        headers=market.admin.headers,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "active"
    again = await market.api.client.post(
        f"/api/v1/admin/licences/{licence['id']}/decision",
        json={"decision": "revoke", "reason": "twice"},
        headers=market.admin.headers,
    )
    assert again.status_code == 409

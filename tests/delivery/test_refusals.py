"""Every delivery act against every refusal: a link, a download through a link taken before, a new access
key, a data call for rows and one for aggregates are each refused when the licence was revoked (a refund),
has expired, the provider was suspended, or the product was graded core data after the sale; nothing is
delivered, metered or billed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from marketplace.demo.factories import licence_terms
from marketplace.kit import clock
from tests.delivery.conftest import COMPUTATION, DISTRICT_DATASET, FIELDS, Market
from tests.delivery.test_data_api import access_key, rows

MODES = {"link": "file", "download": "file", "access key": "api", "rows": "api", "aggregate": "privacy_computing"}


async def revoke(market: Market, order_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for path, body, who in [
        (f"/api/v1/orders/{order_id}/dispute", {"reason": "wrong region"}, market.buyer),
        (
            f"/api/v1/admin/orders/{order_id}/resolve-dispute",
            {"outcome": "refund", "reason": "the data covers another region"},
            market.admin,
        ),
    ]:
        response = await market.api.client.post(path, json=body, headers=who.headers)
        assert response.status_code == 200, response.text


async def expire(market: Market, order_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    later = clock.now() + timedelta(days=31)
    monkeypatch.setattr(clock, "now", lambda: later)


async def suspend_organization(market: Market, organization_id: str) -> None:
    response = await market.api.client.post(
        f"/api/v1/admin/organizations/{organization_id}/standing",
        json={"standing": "suspended", "reason": "data-trading penalty"},
        headers=market.admin.headers,
    )
    assert response.status_code == 200, response.text


async def suspend(market: Market, order_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await suspend_organization(market, market.provider_org["id"])


async def grade_core(market: Market, order_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    product_id = (await market.order(order_id))["product_id"]
    response = await market.api.client.post(
        f"/api/v1/admin/products/{product_id}/grade",
        json={"grade": "core", "reason": "listed in the provincial core data catalogue"},
        headers=market.admin.headers,
    )
    assert response.status_code == 200, response.text


Refusal = Callable[[Market, str, pytest.MonkeyPatch], Awaitable[None]]
REFUSALS: dict[str, Refusal] = {"revoked": revoke, "expired": expire, "suspended": suspend, "graded core": grade_core}


async def prepared(market: Market, act: str) -> tuple[str, dict[str, Any]]:
    """A paid order delivered in the act's mode, and what the buyer holds before the refusal: its delivery
    answer (the link, or the access key)."""
    mode = MODES[act]
    extra: dict[str, Any] = {"licence": licence_terms(term_days=30)}
    if mode != "file":
        extra.update(delivery_modes=[mode], fields=FIELDS)
    if mode == "privacy_computing":
        extra["computation"] = COMPUTATION
    product = await market.product(
        **extra, dataset=DISTRICT_DATASET if mode != "file" else b"district,count\n520102,1\n"
    )
    order_id = await market.paid_order(product, mode)
    if mode == "file":
        delivery = await market.delivery(order_id)
        assert delivery.status_code == 200, delivery.text
        return order_id, dict(delivery.json())
    _, body = await access_key(market, order_id)
    return order_id, body


async def attempt(market: Market, act: str, order_id: str, held: dict[str, Any]) -> httpx.Response:
    client, licence_id = market.api.client, held["licence_id"]
    if act == "link":
        return await market.delivery(order_id)
    if act == "download":
        return await client.get(held["download_url"])
    if act == "access key":
        return await client.post(f"/api/v1/licences/{licence_id}/access-keys", headers=market.buyer.headers)
    if act == "rows":
        return await rows(market, licence_id, held["api_key"], limit=1)
    return await client.post(
        f"/api/v1/data/{licence_id}/aggregate",
        json={"group_by": ["district"], "metrics": [{"fn": "count", "column": "amount"}]},
        headers={"Authorization": f"Bearer {held['api_key']}"},
    )


def assert_refused(refused: httpx.Response) -> None:
    # 403 delivery-refused; a data call whose access key went with the licence is not even authenticated
    assert refused.status_code in (401, 403), refused.text
    if refused.status_code == 403:
        assert refused.json()["type"].endswith(":delivery-refused"), refused.text


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
@pytest.mark.parametrize("act", list(MODES))
async def test_the_act_is_refused_and_nothing_is_delivered(
    market: Market, monkeypatch: pytest.MonkeyPatch, act: str, refusal: str
) -> None:
    order_id, held = await prepared(market, act)
    receipts_before = (
        await market.api.client.get(f"/api/v1/orders/{order_id}/receipts", headers=market.buyer.headers)
    ).json()
    await REFUSALS[refusal](market, order_id, monkeypatch)
    assert_refused(await attempt(market, act, order_id, held))
    receipts = await market.api.client.get(f"/api/v1/orders/{order_id}/receipts", headers=market.buyer.headers)
    assert receipts.json() == receipts_before
    usage = await market.api.client.get(f"/api/v1/licences/{held['licence_id']}/usage", headers=market.buyer.headers)
    assert usage.json()["calls"] == 0

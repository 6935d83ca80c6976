"""API and privacy-computing delivery: access keys, metering and billing, k-suppressed aggregates."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

import pytest
from sqlmodel import col, select

from marketplace.delivery.models import AccessKey, LicenceRateWindow, LicenceUsage, RateWindow, UsageEvent, usage_period
from marketplace.delivery.repository import CallsSoFar, DeliveryRepository, MeteredCall
from marketplace.demo.factories import plan_body
from marketplace.kit import clock
from tests.delivery.conftest import COMPUTATION, DISTRICT_DATASET, DISTRICT_ROWS, FIELDS, Market

METERED = plan_body(
    1_000, "metered", pricing_basis="cost", unit_price_minor=100, included_calls=3, monthly_cap_minor=500
)


async def access_key(market: Market, order_id: str) -> tuple[str, dict[str, Any]]:
    delivery = await market.delivery(order_id)
    assert delivery.status_code == 200, delivery.text
    body = delivery.json()
    assert body["api_key"], body
    return body["api_key"], body


async def rows(market: Market, licence_id: str, key: str, **params: Any) -> Any:
    return await market.api.client.get(
        f"/api/v1/data/{licence_id}/rows", params=params, headers={"Authorization": f"Bearer {key}"}
    )


async def aggregate(market: Market, licence_id: str, key: str, body: dict[str, Any]) -> Any:
    return await market.api.client.post(
        f"/api/v1/data/{licence_id}/aggregate", json=body, headers={"Authorization": f"Bearer {key}"}
    )


async def test_metered_calls_are_free_then_billed_then_capped(market: Market) -> None:
    product = await market.product(plan=METERED, delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    order_id = await market.paid_order(product, "api")
    key, body = await access_key(market, order_id)
    licence_id = body["licence_id"]
    assert (await market.order(order_id))["status"] == "delivered"  # access granted is the delivery
    again = (await market.delivery(order_id)).json()
    assert again["api_key"] is None
    assert again["api_key_prefix"] == body["api_key_prefix"]

    charges = []
    for _ in range(8):
        response = await rows(market, licence_id, key, limit=5, where=['district:eq:"520102"'])
        assert response.status_code == 200, response.text
        charges.append(response.json()["charge_minor"])
        assert len(response.json()["rows"]) == 5
    assert charges == [0, 0, 0, 100, 100, 100, 100, 100]
    capped = await rows(market, licence_id, key, limit=5)
    assert capped.status_code == 429, capped.text
    assert capped.json()["type"].endswith("usage-cap-reached")
    assert int(capped.headers["retry-after"]) > 0

    usage = await market.api.client.get(f"/api/v1/licences/{licence_id}/usage", headers=market.buyer.headers)
    assert usage.json() | {"period": None} == {
        "licence_id": licence_id,
        "period": None,
        "calls": 8,
        "billed_minor": 500,
        "cap_minor": 500,
    }
    check = await market.api.client.get("/api/v1/admin/ledger/check", headers=market.admin.headers)
    assert check.json()["ok"], check.json()


async def test_access_keys_are_checked_scoped_and_rotated(market: Market) -> None:
    product = await market.product(delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    order_id = await market.paid_order(product, "api")
    key, body = await access_key(market, order_id)
    licence_id = body["licence_id"]
    assert (await rows(market, licence_id, key[:-1] + ("A" if key[-1] != "A" else "B"))).status_code == 401
    assert (await rows(market, licence_id, market.buyer.token)).status_code == 401
    page = await rows(market, licence_id, key, limit=10, offset=28)
    assert page.json()["columns"] == ["district", "kind", "amount", "person"]
    assert page.json()["rows"] == [list(r) for r in DISTRICT_ROWS[28:]]
    assert page.json()["next_offset"] is None
    rotated = await market.api.client.post(f"/api/v1/licences/{licence_id}/access-keys", headers=market.buyer.headers)
    assert rotated.status_code == 201, rotated.text
    assert (await rows(market, licence_id, key)).status_code == 401
    assert (await rows(market, licence_id, rotated.json()["key"])).status_code == 200
    other = await market.paid_order(product, "api")
    other_key, _ = await access_key(market, other)
    assert (await rows(market, licence_id, other_key)).status_code == 404


CASES: list[tuple[list[str], str | None]] = [(["district"], None), (["district", "kind"], None), (["district"], "bus")]


def reference(group_by: list[str], kind: str | None, k: int) -> tuple[list[dict[str, Any]], int]:
    """The expected aggregate, computed from the rows in plain Python."""
    columns = {"district": 0, "kind": 1}
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for row in DISTRICT_ROWS:
        if kind is None or row[1] == kind:
            groups[tuple(row[columns[c]] for c in group_by)].append(row[2])
    kept = [
        {**dict(zip(group_by, values, strict=True)), "count": len(a), "sum(amount)": sum(a), "max(amount)": max(a)}
        for values, a in sorted(groups.items())
        if len(a) >= k
    ]
    return kept, sum(1 for a in groups.values() if len(a) < k)


async def test_api_aggregates_suppress_small_groups_and_match_a_reference(market: Market) -> None:
    """Under an API licence the buyer reads the rows anyway: aggregates are the engine's exact answer."""
    product = await market.product(
        delivery_modes=["api", "privacy_computing"], computation=COMPUTATION, fields=FIELDS, dataset=DISTRICT_DATASET
    )
    order_id = await market.paid_order(product, "api")
    key, body = await access_key(market, order_id)
    licence_id = body["licence_id"]
    metrics = [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "max", "column": "amount"}]
    for group_by, kind in CASES:
        filters = [{"column": "kind", "op": "eq", "value": kind}] if kind else []
        response = await aggregate(
            market, licence_id, key, {"group_by": group_by, "metrics": metrics, "filters": filters}
        )
        assert response.status_code == 200, response.text
        result = response.json()
        expected, suppressed = reference(group_by, kind, 10)
        got = [{name: group[name] for name in expected[0]} for group in result["groups"]] if expected else []
        assert got == expected, (group_by, kind)
        assert result["suppressed_groups"] == suppressed
        assert result["min_group_size"] == 10
        assert result["privacy"] is None
    # 520103 has 9 rows: suppressed, and none of its values appear.
    by_district = (await aggregate(market, licence_id, key, {"group_by": ["district"], "metrics": metrics})).json()
    assert "520103" not in str(by_district["groups"])
    assert by_district["suppressed_groups"] == 1

    for refused in (
        {"group_by": ["person"], "metrics": [{"fn": "count"}]},
        {"metrics": [{"fn": "count"}], "filters": [{"column": "person", "op": "eq", "value": "P001"}]},
        {"metrics": [{"fn": "sum", "column": "person"}]},
        {"metrics": [{"fn": "count"}], "group_by": ["no_such_column"]},
    ):
        response = await aggregate(market, licence_id, key, refused)
        assert response.status_code == 422, (refused, response.text)
        assert response.json()["query_error"] == "column-not-allowed"


# Laplace noise passes this many of its scales with probability e^-20 (2e-9): the test's few dozen noisy values
# all stay within it but with probability below 1e-7.
WITHIN_SCALES = 20


async def test_privacy_computing_suppresses_the_same_groups_and_adds_the_declared_noise(market: Market) -> None:
    product = await market.product(
        delivery_modes=["privacy_computing"], computation=COMPUTATION, fields=FIELDS, dataset=DISTRICT_DATASET
    )
    order_id = await market.paid_order(product, "privacy_computing")
    key, body = await access_key(market, order_id)
    licence_id = body["licence_id"]
    metrics = [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}]
    for group_by, kind in CASES:
        filters = [{"column": "kind", "op": "eq", "value": kind}] if kind else []
        response = await aggregate(
            market, licence_id, key, {"group_by": group_by, "metrics": metrics, "filters": filters}
        )
        assert response.status_code == 200, response.text
        result = response.json()
        expected, suppressed = reference(group_by, kind, 10)
        # The groups shown and the suppressed count are decided on the true sizes, as without noise.
        assert [{c: g[c] for c in group_by} for g in result["groups"]] == [
            {c: e[c] for c in group_by} for e in expected
        ]
        assert (result["suppressed_groups"], result["min_group_size"]) == (suppressed, 10)
        noise = {m["metric"]: m["noise"] for m in result["privacy"]["metrics"]}
        for got, want in zip(result["groups"], expected, strict=True):
            for name in ("count", "sum(amount)"):
                assert abs(got[name] - want[name]) <= WITHIN_SCALES * noise[name][0]["scale"], (name, got, want)
            assert 0 <= got["avg(amount)"] <= 2000
    privacy = result["privacy"]
    assert (privacy["epsilon_spent"], privacy["budget"], privacy["budget_spent"]) == (1.0, 10.0, 3.0)
    assert [(m["metric"], m["epsilon"]) for m in privacy["metrics"]] == [
        ("count", pytest.approx(1 / 3)),
        ("sum(amount)", pytest.approx(1 / 3)),
        ("avg(amount)", pytest.approx(1 / 3)),
    ]
    assert [n["statistic"] for n in noise["avg(amount)"]] == ["sum(amount)", "count(amount)"]

    refused = await aggregate(market, licence_id, key, {"metrics": [{"fn": "max", "column": "amount"}]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["query_error"] == "metric-not-private"
    after = await aggregate(market, licence_id, key, {"metrics": [{"fn": "count"}]})
    assert after.json()["privacy"]["budget_spent"] == 4.0  # the refused query spent nothing
    # Raw rows never leave in privacy-computing delivery.
    assert (await rows(market, licence_id, key)).status_code == 403


async def test_concurrent_calls_are_written_as_metered(market: Market) -> None:
    """What metering writes for calls answered together: one usage event each, numbered 1 to n in the month,
    its charge as answered, and n calls in the key's minute, the licence's minute and the month."""
    product = await market.product(plan=METERED, delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    order_id = await market.paid_order(product, "api")
    key, body = await access_key(market, order_id)
    licence_id = body["licence_id"]
    responses = await asyncio.gather(*(rows(market, licence_id, key, limit=2) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    answered = sorted((r.json()["call_number"], r.json()["charge_minor"]) for r in responses)
    assert answered == [(1, 0), (2, 0), (3, 0), (4, 100), (5, 100)]
    async with market.api.sessions() as session:
        events = (await session.execute(select(col(UsageEvent.call_number), col(UsageEvent.charge_minor)))).all()
        assert sorted(tuple(event) for event in events) == answered
        key_minutes = list(await session.scalars(select(col(RateWindow.calls))))
        licence_minutes = list(await session.scalars(select(col(LicenceRateWindow.calls))))
        months = (await session.execute(select(col(LicenceUsage.calls), col(LicenceUsage.billed_minor)))).all()
    # the calls of one minute, or of two when they straddle its end
    assert sum(key_minutes) == sum(licence_minutes) == 5
    assert len(key_minutes) == len(licence_minutes)
    assert [tuple(month) for month in months] == [(5, 200)]


@pytest.mark.postgres
async def test_a_metering_turn_is_one_transactions_at_a_time_and_reads_what_the_last_committed(market: Market) -> None:
    """The licence's metering lock, tried with the read of its counts in one statement: refused while another
    transaction holds it, and once that one has committed, held with the counts it wrote (the read sees what
    was committed after the lock was taken, not before the statement)."""
    product = await market.product(plan=METERED, delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    _, body = await access_key(market, await market.paid_order(product, "api"))
    licence_id = uuid.UUID(body["licence_id"])
    async with market.api.sessions() as session:
        key_id = (await session.scalars(select(col(AccessKey.id)).where(col(AccessKey.licence_id) == licence_id))).one()
    now = clock.now()
    window, period = now.replace(second=0, microsecond=0), usage_period(now)
    async with market.api.sessions() as first, market.api.sessions() as second:
        holder, other = DeliveryRepository(first), DeliveryRepository(second)
        assert await holder.metering_turn(licence_id, key_id, window, period, wait=False) == CallsSoFar(0, 0, 0, 0)
        assert await other.metering_turn(licence_id, key_id, window, period, wait=False) is None
        calls = [MeteredCall(key_id, "rows", now, 1, 0)]
        added = {(key_id, window): 1}, {window: 1}, {period: (1, 0)}
        assert await holder.record_metering(licence_id, *added, None, calls)
        await first.commit()
        assert await other.metering_turn(licence_id, key_id, window, period, wait=False) == CallsSoFar(1, 1, 1, 0)


@pytest.mark.postgres
async def test_the_monthly_cap_holds_exactly_under_concurrent_calls(market: Market) -> None:
    plan = {**METERED, "included_calls": 5, "unit_price_minor": 70, "monthly_cap_minor": 2_100}
    product = await market.product(plan=plan, delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    order_id = await market.paid_order(product, "api")
    key, body = await access_key(market, order_id)
    licence_id = body["licence_id"]
    responses = await asyncio.gather(*(rows(market, licence_id, key, limit=1) for _ in range(60)))
    statuses = sorted(r.status_code for r in responses)
    # 5 included calls, then 2,100 / 70 = 30 billed ones; the other 25 reach the cap.
    assert statuses == [200] * 35 + [429] * 25, statuses
    charges = sorted(r.json()["charge_minor"] for r in responses if r.status_code == 200)
    assert charges == [0] * 5 + [70] * 30
    usage = await market.api.client.get(f"/api/v1/licences/{licence_id}/usage", headers=market.buyer.headers)
    assert (usage.json()["calls"], usage.json()["billed_minor"]) == (35, 2_100)
    check = await market.api.client.get("/api/v1/admin/ledger/check", headers=market.admin.headers)
    assert check.json()["ok"], check.json()
    assert check.json()["transfers"] == 1 + 30  # the base fee's payment, and one transfer per billed call


async def test_filtered_pages_are_the_same_however_they_are_read_and_a_nested_list_is_refused(market: Market) -> None:
    """A filter's first page is the engine's, its next ones slices of its matching rows' positions: the same rows.
    A list inside an `in` list is a 422 problem, from the copy of the rows as from the engine, and is not metered."""
    product = await market.product(delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    order_id = await market.paid_order(product, "api")
    key, body = await access_key(market, order_id)
    licence_id = body["licence_id"]
    assert (await rows(market, licence_id, key, limit=1)).status_code == 200  # the copy of the rows, made now
    matching = [list(r) for r in DISTRICT_ROWS if r[0] == "520102"]
    for _ in range(3):
        page = await rows(market, licence_id, key, limit=4, offset=2, where=['district:eq:"520102"'])
        assert page.status_code == 200, page.text
        assert page.json()["rows"] == matching[2:6]
    usage = await market.api.client.get(f"/api/v1/licences/{licence_id}/usage", headers=market.buyer.headers)
    for where in ('district:in:[["520102"]]', 'district:in:[{"a": 1}]'):
        refused = await rows(market, licence_id, key, limit=4, where=[where])
        assert refused.status_code == 422, refused.text
        assert refused.json()["query_error"] == "bad-filter"
    after = await market.api.client.get(f"/api/v1/licences/{licence_id}/usage", headers=market.buyer.headers)
    assert after.json()["calls"] == usage.json()["calls"]

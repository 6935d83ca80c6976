"""A usage statement declined: tried again on the retry schedule (1 day, then 3 days), each failure an event; still
unpaid past the grace its licence is suspended; collected at last, the licence is reinstated and the books settle."""

from __future__ import annotations

from datetime import datetime, timedelta

from marketplace.delivery.models import next_period_start
from marketplace.jobs import collect_usage, settle, usage_statements
from marketplace.kit import clock
from tests.billing.conftest import INCLUDED_CALLS, UNIT_PRICE_MINOR, Billing

NOTHING = {"paid": 0, "failed": 0, "waiting": 0, "suspended_licences": 0}
DAY = timedelta(days=1)


async def statement(billing: Billing, licence_id: str) -> dict[str, object]:
    listed = await billing.api.client.get(
        "/api/v1/usage-statements", params={"licence_id": licence_id}, headers=billing.market.buyer.headers
    )
    [item] = listed.json()["items"]
    return dict(item)


async def test_a_declined_statement_is_retried_suspends_then_paid_reinstates(billing: Billing) -> None:
    market, settings = billing.market, billing.runtime.settings
    assert settings.billing_retry_seconds == (86_400, 259_200)
    order_id, licence_id, key = await billing.metered_licence()
    await billing.calls(licence_id, key, INCLUDED_CALLS + 7)
    amount = 7 * UNIT_PRICE_MINOR
    start = next_period_start(clock.now()) + timedelta(minutes=11)
    await billing.run(usage_statements, start)
    billing.gateway.declining = True

    assert await billing.run(collect_usage, start) == NOTHING | {"failed": 1}
    first = await statement(billing, licence_id)
    assert (first["status"], first["attempts"]) == ("failed", 1)
    assert datetime.fromisoformat(str(first["next_attempt_at"])) == start + DAY
    assert await billing.run(collect_usage, start + DAY - timedelta(minutes=1)) == NOTHING  # not due yet
    assert await billing.run(collect_usage, start + DAY) == NOTHING | {"failed": 1}
    second = await statement(billing, licence_id)
    assert second["attempts"] == 2
    assert datetime.fromisoformat(str(second["next_attempt_at"])) == start + DAY + 3 * DAY
    await billing.books()
    assert await billing.held(f"buyer_receivable:{market.buyer_org['id']}:CNY") == amount  # still owed

    # a week after the first failure, still declined: the licence is suspended and delivers nothing
    grace = start + timedelta(seconds=settings.billing_grace_seconds)
    assert await billing.run(collect_usage, grace) == NOTHING | {"failed": 1, "suspended_licences": 1}
    assert (await market.licence(order_id))["status"] == "suspended"
    refused = await billing.api.client.get(
        f"/api/v1/data/{licence_id}/rows", params={"limit": 1}, headers={"Authorization": f"Bearer {key}"}
    )
    assert refused.status_code in (401, 403), refused.text

    # the card works again: the next attempt collects it, and the licence is reinstated
    billing.gateway.declining = False
    retry = datetime.fromisoformat(str((await statement(billing, licence_id))["next_attempt_at"]))
    assert retry == grace + 3 * DAY  # the schedule's last step repeats
    assert await billing.run(collect_usage, retry) == NOTHING | {"paid": 1}
    paid = await statement(billing, licence_id)
    assert (paid["status"], paid["attempts"]) == ("paid", 3)
    assert (await market.licence(order_id))["status"] == "active"
    await billing.books()
    assert await billing.held(f"buyer_receivable:{market.buyer_org['id']}:CNY") == 0
    assert [attempt for _, attempt, _ in billing.gateway.charges] == [0, 1, 2, 3]
    assert (await billing.run(settle, retry))["settled_charges"] == 1
    await billing.books()
    assert await billing.events(str(paid["id"])) == [
        "usage_statement.issued",
        "usage_statement.failed",
        "usage_statement.failed",
        "usage_statement.failed",
        "usage_statement.paid",
    ]
    licence_events = await billing.events(str(paid["licence_id"]))
    assert licence_events[-2:] == ["licence.suspended", "licence.reinstated"]

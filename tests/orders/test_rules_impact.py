"""`marketplace rules impact` over orders: open trades replayed from their verdict snapshots under a candidate."""

from __future__ import annotations

import json
from pathlib import Path

from tests.compliance.test_impact import run_cli
from tests.orders.conftest import Market
from tests.orders.test_admin_trades import held_for_review

# The candidate: general-grade data no longer goes out as files.
API_ONLY = (
    "[rules.R3.parameters]\n"
    'allowed_delivery_modes = { general = ["api", "privacy_computing"], important = ["api", "privacy_computing"], '
    "core = [] }\n"
)


async def test_impact_names_the_open_orders_a_candidate_would_decide_otherwise(market: Market, tmp_path: Path) -> None:
    paid = (await market.accepted_order())["id"]
    assert (await market.act(paid, "pay", market.buyer)).status_code == 200
    completed = (await market.accepted_order())["id"]
    assert (await market.act(completed, "pay", market.buyer)).status_code == 200
    await market.take_delivery(completed)
    assert (await market.act(completed, "confirm", market.buyer)).status_code == 200
    by_api = (await market.accepted_order(delivery_mode="api"))["id"]
    cancelled = (await market.accepted_order())["id"]
    assert (await market.act(cancelled, "cancel", market.buyer)).status_code == 200
    rejected = (await market.place(scenario="credit_scoring")).json()["order_id"]
    flagged = (await market.order(rejected))["flagged_rules"]
    held = await held_for_review(market, market.buyer, market.buyer_org["id"], flagged, tmp_path)

    candidate = tmp_path / "api-only.toml"
    candidate.write_text(API_ONLY)
    code, out = await run_cli(market.api, "rules", "impact", "--rulebook", str(candidate))
    assert code == 0, out
    report = json.loads(out)
    # admitted organisations (provider and buyer) and the open orders; not the cancelled or rejected ones
    assert report["subjects_checked_by_type"] == {"organization": 2, "order": 4}
    assert report["subjects_checked"] == 6
    changes = {change["subject_id"]: change for change in report["changes"]}
    assert set(changes) == {paid, completed, held}
    for untouched in (by_api, cancelled, rejected):
        assert untouched not in out
    assert report["would_now_fail"] == 3
    for order_id, status, was in ((paid, "paid", "accepted"), (completed, "completed", "accepted")):
        change = changes[order_id]
        assert (change["subject_type"], change["stage"], change["order_status"]) == ("order", "trade", status)
        assert (change["current_decision"], change["candidate_decision"]) == (was, "rejected")
        assert change["decision_changed"] is True
        assert change["newly_failing"] == ["R3.delivery-mode"]
        assert change["no_longer_failing"] == []
    held_change = changes[held]
    assert (held_change["order_status"], held_change["current_decision"]) == ("pending_review", "review")
    assert held_change["candidate_decision"] == "rejected"


async def test_impact_of_the_current_rulebook_changes_no_order(market: Market) -> None:
    order = (await market.accepted_order())["id"]
    assert (await market.act(order, "pay", market.buyer)).status_code == 200
    code, out = await run_cli(market.api, "rules", "impact", "--rulebook", "rules/rulebook.toml")
    assert code == 0, out
    report = json.loads(out)
    assert report["subjects_checked_by_type"] == {"organization": 2, "order": 1}
    assert report["changes"] == []

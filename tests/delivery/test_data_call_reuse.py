"""A data call reuses the delivery stage's acceptance while the facts it judged are unchanged; every refusal
still stops the very next call after one answered: a dispute, a refund's revocation, the term's end, the
provider's suspension, a regrading to core data, the suspension of the buyer, and a change of rulebook."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.compliance.rulebook import load_rulebook
from tests.delivery.conftest import Market
from tests.delivery.test_refusals import (
    REFUSALS,
    Refusal,
    assert_refused,
    attempt,
    prepared,
    suspend_organization,
)


async def dispute(market: Market, order_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"/api/v1/orders/{order_id}/dispute"
    response = await market.api.client.post(path, json={"reason": "wrong region"}, headers=market.buyer.headers)
    assert response.status_code == 200, response.text


async def suspend_buyer(market: Market, order_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await suspend_organization(market, market.buyer_org["id"])


AFTER_AN_ANSWER: dict[str, Refusal] = {**REFUSALS, "disputed": dispute, "buyer suspended": suspend_buyer}


@pytest.mark.parametrize("refusal", sorted(AFTER_AN_ANSWER))
@pytest.mark.parametrize("act", ["rows", "aggregate"])
async def test_a_refusal_stops_the_call_after_an_answered_one(
    market: Market, monkeypatch: pytest.MonkeyPatch, act: str, refusal: str
) -> None:
    order_id, held = await prepared(market, act)
    for _ in range(2):  # the second reuses the first's acceptance
        answered = await attempt(market, act, order_id, held)
        assert answered.status_code == 200, answered.text
    usage_path = f"/api/v1/licences/{held['licence_id']}/usage"
    before = (await market.api.client.get(usage_path, headers=market.buyer.headers)).json()
    assert before["calls"] == 2
    await AFTER_AN_ANSWER[refusal](market, order_id, monkeypatch)
    assert_refused(await attempt(market, act, order_id, held))
    usage = await market.api.client.get(f"{usage_path}?period={before['period']}", headers=market.buyer.headers)
    assert usage.json()["calls"] == 2  # the refused call metered nothing


@pytest.mark.postgres  # the facts' stamp, and so the reuse, is PostgreSQL's row versions
async def test_another_rulebook_judges_the_call_after_an_answered_one(
    market: Market, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The acceptance is kept under the rulebook that gave it: a process whose rulebook changed (one that lets
    general data out as files only) judges the next call afresh, on the same facts, and refuses it."""
    order_id, held = await prepared(market, "rows")
    for _ in range(2):  # the second reuses the first's acceptance
        answered = await attempt(market, "rows", order_id, held)
        assert answered.status_code == 200, answered.text
    config = tmp_path / "files-only.toml"
    config.write_text(
        "[rules.R3.parameters]\nallowed_delivery_modes = {general = ['file'], important = [], core = []}\n"
    )
    # the same process's memory of acceptances, under another rulebook
    monkeypatch.setattr(market.api.app.state, "runtime", market.api.runtime(rulebook=load_rulebook(config)))
    refused = await attempt(market, "rows", order_id, held)
    assert refused.status_code == 403, refused.text
    assert "R3" in {finding["rule_id"] for finding in refused.json()["findings"]}

"""The judgements a process keeps: the same facts the same day under the same rulebook get the very rows an
evaluation now would store; other facts (an edited organisation, a new product version, another plan), another
rulebook or another day are judged afresh; a rule that raised is judged afresh every time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from marketplace.compliance import service as compliance_service
from marketplace.compliance.contract import Decision, Outcome, Stage
from marketplace.compliance.engine import RULE_ERROR_ID, evaluate
from marketplace.compliance.parts import part_of
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.rulebook import Rulebook, build_rulebook, load_rulebook
from marketplace.compliance.service import ComplianceService, stored_form
from marketplace.compliance.snapshots import Snapshot
from tests.compliance.toy_rules import RaisingRule
from tests.rules.snapshots import BUYER, PLAN, PRODUCT, PROVIDER, TRADE, replace, trade_snapshot

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


class Counted:
    """The engine's `evaluate`, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return evaluate(*args)


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> Counted:
    counted = Counted()
    monkeypatch.setattr(compliance_service, "evaluate", counted)
    return counted


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The service's clock, which the test moves by setting `at[0]`."""
    moment = [NOW]
    monkeypatch.setattr(compliance_service.clock, "now", lambda: moment[0])
    return moment


def assessed(service: ComplianceService, snapshot: Snapshot, **parts: Any) -> tuple[dict[str, Any], Any]:
    rows, _ = service.assess(stage=Stage.TRADE, subject_type="order", subject_id="o", snapshot=snapshot, **parts)
    return rows.verdict, rows.parts


def listing_parts(snapshot: Snapshot) -> dict[str, Any]:
    """The parts a kept listing hands over: its provider, its version and the plan, digested apart."""
    assert snapshot.provider
    assert snapshot.product
    assert snapshot.plan
    roles = {"provider": snapshot.provider, "product": snapshot.product, "plan": snapshot.plan}
    return {"parts": {role: part_of(role, facts) for role, facts in roles.items()}}


def without_own(verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict row without what is its own (its id)."""
    return {name: value for name, value in verdict.items() if name != "id"}


def service(rulebook: Rulebook | None = None) -> ComplianceService:
    return ComplianceService(None, rulebook or load_rulebook(), None)  # type: ignore[arg-type]  # assess uses neither


def test_a_kept_judgement_stores_the_rows_an_evaluation_now_stores(evaluations: Counted, at: list[datetime]) -> None:
    kept = service()
    snapshot = trade_snapshot()

    first = assessed(kept, snapshot, **listing_parts(snapshot))
    at[0] = NOW + timedelta(hours=3)
    again = assessed(kept, snapshot, **listing_parts(snapshot))
    fresh = assessed(service(), snapshot)

    assert evaluations.calls == 2  # the kept service once, the fresh one once
    assert without_own(again[0]) == without_own(fresh[0])
    assert again[1] == fresh[1] == first[1]
    assert again[0]["created_at"] == NOW + timedelta(hours=3)  # the verdict's own time, not the kept one's
    judged = evaluate(load_rulebook(), Stage.TRADE, snapshot, at[0])
    assert again[0]["findings"] == [finding.as_json() for finding in judged.findings]
    assert again[0]["decision"] == judged.decision


def test_parts_handed_over_are_the_parts_the_snapshot_makes() -> None:
    snapshot = trade_snapshot()

    assert stored_form(snapshot, listing_parts(snapshot)["parts"]) == stored_form(snapshot)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"buyer": replace(BUYER, jurisdiction="US")}, id="organisation-edited"),
        pytest.param({"provider": replace(PROVIDER, status="suspended")}, id="provider-edited"),
        pytest.param(
            {"product": replace(PRODUCT, version=PRODUCT.version + 1, grade="core")}, id="product-re-versioned"
        ),
        pytest.param({"plan": replace(PLAN, price_minor=PLAN.price_minor * 100)}, id="plan-changed"),
        pytest.param({"trade": replace(TRADE, quantity=TRADE.quantity + 1)}, id="trade-changed"),
    ],
)
def test_changed_facts_are_judged_afresh(evaluations: Counted, at: list[datetime], changed: dict[str, Any]) -> None:
    kept = service()
    before = trade_snapshot()
    after = trade_snapshot(**changed)
    assessed(kept, before, **listing_parts(before))

    verdict, _ = assessed(kept, after, **listing_parts(after))

    assert evaluations.calls == 2
    judged = evaluate(load_rulebook(), Stage.TRADE, after, NOW)
    assert verdict["findings"] == [finding.as_json() for finding in judged.findings]
    assert verdict["findings"] != assessed(service(), before)[0]["findings"]


def test_another_rulebook_judges_afresh(evaluations: Counted, at: list[datetime]) -> None:
    judgements = service().judgements
    snapshot = trade_snapshot()
    stricter = build_rulebook(load_rule_classes(), {"rules": {"R5": {"severity": "block"}, "S9": {"enabled": False}}})
    assessed(ComplianceService(None, load_rulebook(), None, judgements), snapshot)  # type: ignore[arg-type]

    verdict, _ = assessed(ComplianceService(None, stricter, None, judgements), snapshot)  # type: ignore[arg-type]

    assert evaluations.calls == 2
    assert verdict["rulebook_fingerprint"] == stricter.fingerprint
    assert not any(finding["rule_id"] == "S9" for finding in verdict["findings"])


def test_the_next_day_judges_afresh(evaluations: Counted, at: list[datetime]) -> None:
    kept = service()
    assessed(kept, trade_snapshot())
    at[0] = NOW.replace(hour=23, minute=59)
    assessed(kept, trade_snapshot())
    assert evaluations.calls == 1

    at[0] = NOW + timedelta(days=1)
    assessed(kept, trade_snapshot())

    assert evaluations.calls == 2


def test_a_rule_that_raised_is_judged_afresh_every_time(evaluations: Counted, at: list[datetime]) -> None:
    kept = service(build_rulebook({"X1": RaisingRule}, {}))

    for _ in range(2):
        verdict, _ = assessed(kept, trade_snapshot())
        assert verdict["decision"] == Decision.REJECTED
        assert [(f["message_id"], f["outcome"]) for f in verdict["findings"]] == [(RULE_ERROR_ID, Outcome.FAIL)]

    assert evaluations.calls == 2

"""R4 — data product cost evaluation: declaration present, non-negative, components add up,
ISO 4217 currency shared with the plans, costing method named and accepted."""

from __future__ import annotations

import json

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import CostDeclaration, PlanFacts, Snapshot
from rules.r4_cost_evaluation import CostEvaluationRule
from tests.rules.snapshots import (
    PLAN,
    PRODUCT,
    PROVIDER,
    admission_snapshot,
    by_check,
    context,
    delivery_snapshot,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = CostEvaluationRule()
assert PRODUCT.cost is not None
COST_DECLARATION: CostDeclaration = PRODUCT.cost

CHECKS = {"R4.cost-declared", "R4.non-negative", "R4.components-sum", "R4.currency", "R4.plan-currency", "R4.method"}


def listing(rule: CostEvaluationRule = RULE, /, **cost: object) -> dict[str, Finding]:
    product = replace(PRODUCT, cost=replace(COST_DECLARATION, **cost))
    return by_check(rule.evaluate(context(Stage.LISTING, listing_snapshot(product))))


def listing_with_plans(plans: tuple[PlanFacts, ...]) -> dict[str, Finding]:
    product = replace(PRODUCT, plans=plans)
    return by_check(RULE.evaluate(context(Stage.LISTING, listing_snapshot(product))))


def test_declarations() -> None:
    assert RULE.id == "R4"
    assert RULE.title_zh == "数据产品成本评估指引"
    assert RULE.title_en == "Data product cost evaluation"
    assert RULE.version == "1.0.0"
    assert RULE.stages == frozenset({Stage.LISTING})
    assert RULE.parameters == {"allowed_methods": ["historical_cost", "replacement_cost", "activity_based"]}
    assert "ISO 4217" in RULE.basis


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []
    assert RULE.evaluate(context(Stage.TRADE, trade_snapshot())) == []
    assert RULE.evaluate(context(Stage.DELIVERY, delivery_snapshot())) == []


def test_realistic_cost_declaration_passes() -> None:
    findings = by_check(RULE.evaluate(context(Stage.LISTING, listing_snapshot())))
    assert set(findings) == CHECKS
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    assert findings["R4.cost-declared"].evidence == {
        "components_minor": {
            "collection": 300_000,
            "processing": 250_000,
            "storage": 50_000,
            "compliance": 100_000,
            "other": 0,
        },
        "total_minor": 700_000,
        "currency": "CNY",
    }
    assert findings["R4.components-sum"].evidence == {
        "sum_minor": 700_000,
        "total_minor": 700_000,
        "difference_minor": 0,
    }
    assert findings["R4.currency"].evidence == {"currency": "CNY", "iso_4217": True}
    assert findings["R4.plan-currency"].evidence == {"currency": "CNY", "plans": 1, "mismatched": []}
    assert findings["R4.method"].evidence["method"] == "historical_cost"
    for finding in findings.values():
        json.dumps(finding.as_json())


def test_a_missing_cost_declaration_fails_once_and_the_other_checks_follow_from_it() -> None:
    product = replace(PRODUCT, cost=None)
    findings = by_check(RULE.evaluate(context(Stage.LISTING, listing_snapshot(product))))
    assert set(findings) == CHECKS
    assert [check for check, f in findings.items() if f.outcome is Outcome.FAIL] == ["R4.cost-declared"]
    assert findings["R4.cost-declared"].evidence == {"product": "product-1", "cost": None}
    for check in CHECKS - {"R4.cost-declared"}:
        assert findings[check].outcome is Outcome.NOT_APPLICABLE
        assert findings[check].follows_from == "R4.cost-declared"
        assert findings[check].as_json()["follows_from"] == "R4.cost-declared"
    assert "follows_from" not in findings["R4.cost-declared"].as_json()


def test_missing_product_fails_closed_once() -> None:
    findings = by_check(RULE.evaluate(context(Stage.LISTING, Snapshot(provider=PROVIDER))))
    assert set(findings) == CHECKS
    assert [check for check, f in findings.items() if f.outcome is Outcome.FAIL] == ["R4.cost-declared"]
    assert all(f.evidence == {"product": None, "cost": None} for f in findings.values())


@pytest.mark.parametrize(
    ("changes", "negative"),
    [
        ({"storage_minor": -50_000, "total_minor": 600_000}, ["storage"]),
        (
            {
                "other_minor": -1,
                "total_minor": -1,
                "collection_minor": 0,
                "processing_minor": 0,
                "storage_minor": 0,
                "compliance_minor": 0,
            },
            ["other", "total"],
        ),
    ],
)
def test_negative_costs_fail(changes: dict[str, object], negative: list[str]) -> None:
    findings = listing(**changes)
    finding = findings["R4.non-negative"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["negative"] == negative
    assert findings["R4.components-sum"].outcome is Outcome.PASS  # the sum itself is right


@pytest.mark.parametrize("total", [699_999, 700_001, 0])
def test_components_must_add_up_exactly(total: int) -> None:
    finding = listing(total_minor=total)["R4.components-sum"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"sum_minor": 700_000, "total_minor": total, "difference_minor": total - 700_000}


@pytest.mark.parametrize("currency", ["RMB", "cny", "", "XYZ"])
def test_currency_must_be_iso_4217(currency: str) -> None:
    finding = listing(currency=currency)["R4.currency"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"currency": currency, "iso_4217": False}


def test_plans_must_share_the_cost_currency() -> None:
    usd_plan = replace(PLAN, id="plan-usd", currency="USD")
    finding = listing_with_plans((PLAN, usd_plan))["R4.plan-currency"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {
        "currency": "CNY",
        "plans": 2,
        "mismatched": [{"plan_id": "plan-usd", "currency": "USD"}],
    }
    usd = listing(currency="USD")
    assert usd["R4.currency"].outcome is Outcome.PASS
    assert usd["R4.plan-currency"].outcome is Outcome.FAIL


def test_plan_currency_not_applicable_without_plans() -> None:
    finding = listing_with_plans(())["R4.plan-currency"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence == {"currency": "CNY", "plans": 0}


@pytest.mark.parametrize("method", [None, "", "  "])
def test_method_must_be_named(method: str | None) -> None:
    finding = listing(method=method)["R4.method"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["method"] == method


def test_method_must_be_accepted() -> None:
    finding = listing(method="gut_feeling")["R4.method"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {
        "method": "gut_feeling",
        "allowed": ["activity_based", "historical_cost", "replacement_cost"],
    }


def test_allowed_methods_parameter_changes_the_outcome() -> None:
    rulebook = build_rulebook(
        {"R4": CostEvaluationRule}, {"rules": {"R4": {"parameters": {"allowed_methods": ["replacement_cost"]}}}}
    )
    active = rulebook.get("R4")
    assert active is not None
    assert isinstance(active.rule, CostEvaluationRule)
    assert listing()["R4.method"].outcome is Outcome.PASS
    finding = listing(active.rule)["R4.method"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"method": "historical_cost", "allowed": ["replacement_cost"]}
    assert listing(active.rule, method="replacement_cost")["R4.method"].outcome is Outcome.PASS


def test_cost_declaration_model_is_what_the_rule_reads() -> None:
    # Guard: the five components the rule names are exactly the snapshot's fields.
    fields = {name for name in CostDeclaration.model_fields if name.endswith("_minor")}
    assert fields == {
        "collection_minor",
        "processing_minor",
        "storage_minor",
        "compliance_minor",
        "other_minor",
        "total_minor",
    }

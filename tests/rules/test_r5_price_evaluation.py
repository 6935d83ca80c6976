"""R5 trading price evaluation: listing and trade checks on realistic snapshots."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest

from marketplace.compliance.contract import Decision, Finding, Outcome, Stage
from marketplace.compliance.engine import evaluate
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import PlanFacts, PrivateOffer, Snapshot
from rules.r5_price_evaluation import PriceEvaluationRule
from tests.rules.snapshots import (
    NOW,
    PLAN,
    PRODUCT,
    TRADE,
    context,
    listing_snapshot,
    replace,
    trade_snapshot,
)

LISTING_CHECKS = ["plan-price", "plan-currency", "pricing-basis", "reference-deviation", "public-data-cap"]
TRADE_CHECKS = [
    "plan-listed",
    "private-offer",
    "trade-amount",
    "trade-currency",
    "reference-deviation",
    "public-data-cap",
]


def run(stage: Stage, snapshot: Snapshot, rule: PriceEvaluationRule | None = None) -> dict[str, Finding]:
    findings = (rule or PriceEvaluationRule()).evaluate(context(stage, snapshot))
    codes = [f.check for f in findings]
    assert len(codes) == len(set(codes)), codes
    for finding in findings:
        assert finding.rule_id == "R5"
        assert finding.message
        assert finding.basis == PriceEvaluationRule.basis
        json.dumps(finding.as_json())  # evidence is JSON-serialisable
    return {f.check.removeprefix("R5."): f for f in findings}


def listing(**product_changes: object) -> dict[str, Finding]:
    return run(Stage.LISTING, listing_snapshot(replace(PRODUCT, **product_changes)))


def trade(rule: PriceEvaluationRule | None = None, **parts: object) -> dict[str, Finding]:
    return run(Stage.TRADE, trade_snapshot(**parts), rule)


# --- declarations ------------------------------------------------------------------------------


def test_declarations_and_loading() -> None:
    point = EntryPoint(name="R5", value="rules.r5_price_evaluation:PriceEvaluationRule", group="marketplace.rules")
    assert load_rule_classes([point]) == {"R5": PriceEvaluationRule}
    assert PriceEvaluationRule.title_zh == "数据产品交易价格评估指引"
    assert PriceEvaluationRule.version == "1.0.0"
    assert PriceEvaluationRule.stages == frozenset({Stage.LISTING, Stage.TRADE})
    assert PriceEvaluationRule.parameters == {"price_deviation_band_bps": 3000}


def test_other_stages_yield_nothing() -> None:
    assert PriceEvaluationRule().evaluate(context(Stage.DELIVERY, trade_snapshot())) == []


@pytest.mark.parametrize("band", [-1, "3000", True])
def test_invalid_band_is_refused(band: object) -> None:
    with pytest.raises(ValueError, match="price_deviation_band_bps"):
        PriceEvaluationRule({"price_deviation_band_bps": band})


# --- listing -------------------------------------------------------------------------------------


def test_listing_realistic_product_passes() -> None:
    found = listing()
    assert list(found) == LISTING_CHECKS
    for code in ("plan-price", "plan-currency", "pricing-basis", "reference-deviation"):
        assert found[code].outcome is Outcome.PASS, code
    assert found["public-data-cap"].outcome is Outcome.NOT_APPLICABLE
    deviation = found["reference-deviation"].evidence
    assert deviation["reference_price_minor"] == 1_150_000
    assert deviation["plans"] == [{"plan_id": "plan-1", "price_minor": 1_200_000, "deviation_bps": 435}]
    assert deviation["band_bps"] == 3000


def test_listing_without_product_fails_closed() -> None:
    found = run(Stage.LISTING, Snapshot())
    assert list(found) == LISTING_CHECKS
    assert all(f.outcome is Outcome.FAIL for f in found.values())
    assert found["plan-price"].evidence["missing"] == ["product"]


def test_listing_without_plans_fails() -> None:
    found = listing(plans=())
    assert found["plan-price"].outcome is Outcome.FAIL
    assert found["plan-price"].evidence == {"plans": 0}
    assert found["plan-currency"].outcome is Outcome.NOT_APPLICABLE
    assert found["reference-deviation"].outcome is Outcome.NOT_APPLICABLE


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        (replace(PLAN, price_minor=-1), "price is negative"),
        (replace(PLAN, kind="free", price_minor=100), "a free plan must be priced at 0"),
        (replace(PLAN, price_minor=0), "only a free plan may be priced at 0"),
        (replace(PLAN, kind="metered", unit_price_minor=None), "a metered plan needs a positive per-call unit price"),
        (replace(PLAN, kind="metered", unit_price_minor=0), "a metered plan needs a positive per-call unit price"),
    ],
)
def test_listing_plan_price_fails(plan: PlanFacts, problem: str) -> None:
    found = listing(plans=(plan,))
    assert found["plan-price"].outcome is Outcome.FAIL
    problems = found["plan-price"].evidence["problems"]
    assert [(p["plan_id"], p["problem"]) for p in problems] == [("plan-1", problem)]
    assert problems[0]["price_minor"] == plan.price_minor


def test_listing_free_and_metered_plans_pass_and_are_not_compared() -> None:
    free = PlanFacts(id="plan-free", kind="free", price_minor=0, currency="CNY", pricing_basis="cost")
    metered = PlanFacts(
        id="plan-api", kind="metered", price_minor=10_000, currency="CNY", pricing_basis="market", unit_price_minor=5
    )
    found = listing(plans=(PLAN, free, metered))
    assert found["plan-price"].outcome is Outcome.PASS
    assert found["plan-price"].evidence["plans_checked"] == 3
    assert found["reference-deviation"].outcome is Outcome.PASS
    assert found["reference-deviation"].evidence["not_compared"] == ["plan-free", "plan-api"]


@pytest.mark.parametrize("currency", ["RMB", "XAU", "cny"])
def test_listing_plan_currency_fails(currency: str) -> None:
    found = listing(plans=(replace(PLAN, currency=currency),))
    assert found["plan-currency"].outcome is Outcome.FAIL
    assert found["plan-currency"].evidence["problems"] == [{"plan_id": "plan-1", "currency": currency}]


def test_listing_pricing_basis_missing_fails() -> None:
    found = listing(plans=(replace(PLAN, pricing_basis=None),))
    assert found["pricing-basis"].outcome is Outcome.FAIL
    assert found["pricing-basis"].evidence["missing"] == ["plan-1"]
    assert found["pricing-basis"].evidence["bases"] == {"plan-1": None}


def test_listing_deviation_beyond_band_is_reviewed() -> None:
    found = listing(plans=(replace(PLAN, price_minor=2_000_000),))
    finding = found["reference-deviation"]
    assert finding.outcome is Outcome.REVIEW
    assert finding.evidence["outside_band"] == ["plan-1"]
    assert finding.evidence["plans"][0]["deviation_bps"] == 7392  # ceil(850000 / 1150000 * 10000)


@pytest.mark.parametrize(
    ("price", "deviation", "outcome"),
    [
        (1_300_000, 3000, Outcome.PASS),
        (1_300_001, 3001, Outcome.REVIEW),
        (700_000, 3000, Outcome.PASS),
        (699_999, 3001, Outcome.REVIEW),
    ],
)
def test_listing_deviation_band_edges(price: int, deviation: int, outcome: Outcome) -> None:
    found = listing(reference_price_minor=1_000_000, plans=(replace(PLAN, price_minor=price),))
    assert found["reference-deviation"].outcome is outcome
    assert found["reference-deviation"].evidence["plans"][0]["deviation_bps"] == deviation


def test_listing_deviation_not_applicable_without_reference_or_comparable_plan() -> None:
    assert listing(reference_price_minor=None)["reference-deviation"].outcome is Outcome.NOT_APPLICABLE
    free = replace(PLAN, kind="free", price_minor=0)
    finding = listing(plans=(free,))["reference-deviation"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence["not_compared"] == ["plan-1"]


def test_listing_non_positive_reference_is_reviewed() -> None:
    finding = listing(reference_price_minor=0)["reference-deviation"]
    assert finding.outcome is Outcome.REVIEW
    assert finding.evidence["reference_price_minor"] == 0


def test_listing_public_data_cap() -> None:
    above = listing(public_data=True, government_price_cap_minor=1_000_000)["public-data-cap"]
    assert above.outcome is Outcome.FAIL
    assert above.evidence["above_cap"] == [{"plan_id": "plan-1", "price_minor": 1_200_000}]
    at_cap = listing(public_data=True, government_price_cap_minor=1_200_000)["public-data-cap"]
    assert at_cap.outcome is Outcome.PASS
    assert at_cap.evidence["government_price_cap_minor"] == 1_200_000
    no_cap = listing(public_data=True, government_price_cap_minor=None)["public-data-cap"]
    assert no_cap.outcome is Outcome.REVIEW
    assert no_cap.evidence == {"public_data": True, "government_price_cap_minor": None}


# --- trade ---------------------------------------------------------------------------------------


def test_trade_realistic_trade_passes() -> None:
    found = trade()
    assert list(found) == TRADE_CHECKS
    for code in ("plan-listed", "trade-amount", "trade-currency", "reference-deviation"):
        assert found[code].outcome is Outcome.PASS, code
    assert found["private-offer"].outcome is Outcome.NOT_APPLICABLE
    assert found["public-data-cap"].outcome is Outcome.NOT_APPLICABLE
    assert found["trade-amount"].evidence == {
        "priced_by": "plan",
        "expected_minor": 1_200_000,
        "amount_minor": 1_200_000,
        "quantity": 1,
    }
    assert found["reference-deviation"].evidence["deviation_bps"] == 435


@pytest.mark.parametrize("part", ["product", "plan", "trade"])
def test_trade_missing_part_fails_closed(part: str) -> None:
    found = trade(**{part: None})
    assert list(found) == TRADE_CHECKS
    assert all(f.outcome is Outcome.FAIL for f in found.values())
    assert found["trade-amount"].evidence["missing"] == [part]


def test_trade_plan_not_listed_fails() -> None:
    other = replace(PLAN, id="plan-secret")
    found = trade(plan=other)
    assert found["plan-listed"].outcome is Outcome.FAIL
    assert found["plan-listed"].evidence == {"plan_id": "plan-secret", "listed_plan_ids": ["plan-1"]}


def test_trade_plan_changed_since_listing_fails() -> None:
    cheaper = replace(PLAN, price_minor=900_000)
    found = trade(plan=cheaper, trade=replace(TRADE, amount_minor=900_000))
    assert found["plan-listed"].outcome is Outcome.FAIL
    assert found["plan-listed"].evidence["changed"] == ["price_minor"]
    assert found["trade-amount"].outcome is Outcome.PASS


def test_trade_amount_wrong_fails() -> None:
    found = trade(trade=replace(TRADE, amount_minor=1_000_000))
    assert found["trade-amount"].outcome is Outcome.FAIL
    assert found["trade-amount"].evidence["expected_minor"] == 1_200_000
    assert found["trade-amount"].evidence["amount_minor"] == 1_000_000


def test_trade_amount_is_price_times_quantity() -> None:
    found = trade(trade=replace(TRADE, quantity=3, amount_minor=3_600_000))
    assert found["trade-amount"].outcome is Outcome.PASS
    assert found["trade-amount"].evidence["expected_minor"] == 3_600_000
    short = trade(trade=replace(TRADE, quantity=3, amount_minor=1_200_000))
    assert short["trade-amount"].outcome is Outcome.FAIL


def test_trade_quantity_below_one_fails() -> None:
    found = trade(trade=replace(TRADE, quantity=0, amount_minor=0))
    assert found["trade-amount"].outcome is Outcome.FAIL
    assert found["trade-amount"].evidence["quantity"] == 0


def test_trade_approved_private_offer_sets_the_price() -> None:
    offer = PrivateOffer(price_minor=1_000_000, approved=True)
    found = trade(trade=replace(TRADE, quantity=2, amount_minor=2_000_000, private_offer=offer))
    assert found["private-offer"].outcome is Outcome.PASS
    assert found["trade-amount"].outcome is Outcome.PASS
    assert found["trade-amount"].evidence["priced_by"] == "private_offer"
    assert found["reference-deviation"].outcome is Outcome.PASS
    assert found["reference-deviation"].evidence["priced_by"] == "private_offer"
    assert found["reference-deviation"].evidence["unit_price_minor"] == 1_000_000


def test_trade_unapproved_private_offer_fails() -> None:
    offer = PrivateOffer(price_minor=1_000_000, approved=False)
    found = trade(trade=replace(TRADE, amount_minor=1_000_000, private_offer=offer))
    assert found["private-offer"].outcome is Outcome.FAIL
    assert found["private-offer"].evidence == {"private_offer": True, "approved": False, "price_minor": 1_000_000}


def test_trade_private_offer_far_from_reference_is_reviewed() -> None:
    offer = PrivateOffer(price_minor=500_000, approved=True)
    found = trade(trade=replace(TRADE, amount_minor=500_000, private_offer=offer))
    assert found["trade-amount"].outcome is Outcome.PASS
    assert found["reference-deviation"].outcome is Outcome.REVIEW
    assert found["reference-deviation"].evidence["deviation_bps"] == 5653  # ceil(650000 / 1150000 * 10000)


def test_trade_metered_plan_checks_unit_price_instead_of_amount() -> None:
    metered = replace(PLAN, kind="metered", price_minor=10_000, unit_price_minor=5)
    product = replace(PRODUCT, plans=(metered,))
    found = trade(product=product, plan=metered, trade=replace(TRADE, amount_minor=0))
    assert found["trade-amount"].outcome is Outcome.PASS
    assert found["trade-amount"].evidence["priced_by"] == "metered"
    assert found["trade-amount"].evidence["unit_price_minor"] == 5
    assert found["reference-deviation"].outcome is Outcome.NOT_APPLICABLE


def test_trade_metered_plan_without_unit_price_fails() -> None:
    metered = replace(PLAN, kind="metered", price_minor=10_000, unit_price_minor=None)
    product = replace(PRODUCT, plans=(metered,))
    found = trade(product=product, plan=metered, trade=replace(TRADE, amount_minor=0))
    assert found["trade-amount"].outcome is Outcome.FAIL
    assert found["trade-amount"].evidence["unit_price_minor"] is None


@pytest.mark.parametrize(("amount", "outcome"), [(0, Outcome.PASS), (1, Outcome.FAIL)])
def test_trade_free_plan_amount_is_zero(amount: int, outcome: Outcome) -> None:
    free = replace(PLAN, kind="free", price_minor=0)
    product = replace(PRODUCT, plans=(free,))
    found = trade(product=product, plan=free, trade=replace(TRADE, amount_minor=amount))
    assert found["trade-amount"].outcome is outcome
    assert found["trade-amount"].evidence["priced_by"] == "free"
    assert found["trade-amount"].evidence["expected_minor"] == 0


def test_trade_currency_mismatch_fails() -> None:
    found = trade(trade=replace(TRADE, currency="USD"))
    assert found["trade-currency"].outcome is Outcome.FAIL
    assert found["trade-currency"].evidence == {"trade_currency": "USD", "plan_currency": "CNY"}


def test_trade_without_reference_price_is_not_applicable() -> None:
    found = trade(product=replace(PRODUCT, reference_price_minor=None))
    assert found["reference-deviation"].outcome is Outcome.NOT_APPLICABLE


def test_trade_public_data_cap() -> None:
    capped = replace(PRODUCT, public_data=True, government_price_cap_minor=1_200_000)
    assert trade(product=capped)["public-data-cap"].outcome is Outcome.PASS
    offer = PrivateOffer(price_minor=1_300_000, approved=True)
    above = trade(product=capped, trade=replace(TRADE, amount_minor=1_300_000, private_offer=offer))
    assert above["public-data-cap"].outcome is Outcome.FAIL
    assert above["public-data-cap"].evidence["unit_price_minor"] == 1_300_000
    no_cap = trade(product=replace(PRODUCT, public_data=True))
    assert no_cap["public-data-cap"].outcome is Outcome.REVIEW


def test_repeated_evaluation_follows_the_facts() -> None:
    rule = PriceEvaluationRule()
    assert trade(rule)["trade-amount"].outcome is Outcome.PASS
    assert trade(rule, trade=replace(TRADE, amount_minor=1))["trade-amount"].outcome is Outcome.FAIL
    assert trade(rule)["trade-amount"].outcome is Outcome.PASS
    assert trade(rule, plan=replace(PLAN, currency="USD"))["plan-listed"].outcome is Outcome.FAIL


# --- parameters ----------------------------------------------------------------------------------


def test_tighter_band_turns_pass_into_review() -> None:
    tight = PriceEvaluationRule({"price_deviation_band_bps": 400})
    listed = run(Stage.LISTING, listing_snapshot(), tight)["reference-deviation"]
    assert listed.outcome is Outcome.REVIEW
    assert listed.evidence["band_bps"] == 400
    traded = trade(tight)["reference-deviation"]
    assert traded.outcome is Outcome.REVIEW
    assert traded.evidence["deviation_bps"] == 435


def test_band_from_the_rulebook_holds_the_trade_for_review() -> None:
    classes = {"R5": PriceEvaluationRule}
    default = build_rulebook(classes, {})
    assert evaluate(default, Stage.TRADE, trade_snapshot(), NOW).decision is Decision.ACCEPTED
    tight = build_rulebook(classes, {"rules": {"R5": {"parameters": {"price_deviation_band_bps": 400}}}})
    assert evaluate(tight, Stage.TRADE, trade_snapshot(), NOW).decision is Decision.REVIEW
    wrong = trade_snapshot(trade=replace(TRADE, amount_minor=1))
    assert evaluate(default, Stage.TRADE, wrong, NOW).decision is Decision.REJECTED

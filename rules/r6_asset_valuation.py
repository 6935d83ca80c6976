"""R6 数据资产价值评估指引 - Data asset value evaluation.

The rule text is a reconstruction: the official 2022 Guizhou guideline was not at hand, so
each check below is derived from the rulebook row for R6, the China Appraisal Society's
guidance on data asset appraisal (cost, income and market methods) and the Asset Appraisal
Law, and is written so that a machine can decide it.

When a valuation is required (listing stage)
  A product needs a valuation when any of these holds:
  - its declared value (the value of the valuation on file) is above
    ``valuation_required_above_minor``;
  - any of its plans is priced above ``valuation_required_above_minor``;
  - it is sold exclusively (``licence.exclusive``): an exclusive licence transfers most of
    the product's value to one buyer, so the value must be appraised whatever the price.
  The threshold is compared with amounts in minor units as stated (no currency conversion).

Checks, each ``not_applicable`` when no valuation is required (the evidence shows why)
  - ``valuation``: a valuation is on file.
  - ``valuation-method``: its method is ``cost``, ``income`` or ``market``.
  - ``valuation-assessor``: it was made by an assessor admitted on the exchange.
  - ``valuation-current``: it has not expired at the evaluation time: its ``valid_until``
    is not before ``ctx.now``'s date, or, when no end is stated, it was issued at most
    ``valuation_max_age_days`` before; a valuation dated in the future is refused.
  - ``valuation-value``: the value is positive, in an ISO 4217 currency, and in the currency
    the plans are priced in.
  When a valuation is required but none is on file, every check fails (fail closed).

Parameters
  - ``valuation_required_above_minor`` (default 100_000_000, i.e. CNY 1,000,000): above this
    declared value or plan price a formal appraisal is required; below it the cost of an
    appraisal is out of proportion with the trade (a judgement given in the brief for this
    reconstruction, not a quoted norm).
  - ``valuation_max_age_days`` (default 365): how long a valuation without a stated end of
    validity stays usable; Chinese appraisal practice treats a conclusion as usable for one
    year from its reference date (基准日). The snapshot has no reference date, so the date of
    issue stands in for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Rule, RuleContext, Stage
from marketplace.compliance.snapshots import ProductFacts, Valuation
from marketplace.kit.codelists import is_currency

_CHECKS: Final = ("valuation", "valuation-method", "valuation-assessor", "valuation-current", "valuation-value")
_METHODS: Final = frozenset({"cost", "income", "market"})


class AssetValuationRule(Rule):
    id = "R6"
    title_zh = "数据资产价值评估指引"
    title_en = "Data asset value evaluation"
    version = "1.0.0"
    basis = (
        "资产评估法 (Asset Appraisal Law, 2016)",
        "《数据资产评估指导意见》 (中评协〔2023〕17号): cost, income and market methods",
        "《数据二十条》 (data asset appraisal by third-party service bodies)",
        "《贵州省数据流通交易管理办法（试行）》 (2022)",
    )
    stages = frozenset({Stage.LISTING})
    parameters: ClassVar[Mapping[str, Any]] = {
        "valuation_required_above_minor": 100_000_000,
        "valuation_max_age_days": 365,
    }

    messages: ClassVar[dict[str, str]] = {
        "no-product-in-listing-snapshot": "no product in the listing snapshot",
        "no-valuation-required-for-product": "no valuation required for this product",
        "valuation-required-but-none-on": "a valuation is required but none is on file",
        "valuation-on-file": "a valuation is on file",
        "valuation-method-not-cost-income": "the valuation method is not cost, income or market",
        "valuation-uses-recognised-method": "the valuation uses a recognised method",
        "valuation-not-by-admitted-assessor": "the valuation is not by an admitted assessor",
        "valuation-by-admitted-assessor": "the valuation is by an admitted assessor",
        "valuation-dated-after-evaluation-date": "the valuation is dated after the evaluation date",
        "valuation-expired": "the valuation has expired",
        "valuation-current": "the valuation is current",
        "valuation-value-not-positive": "the valuation's value is not positive",
        "valuation-currency-not-iso-4217": "the valuation's currency is not an ISO 4217 code",
        "valuation-not-in-currency-plans": "the valuation is not in the currency of the plans",
        "value-positive-and-in-plans": "the value is positive and in the plans' currency",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        threshold = self.params["valuation_required_above_minor"]
        max_age = self.params["valuation_max_age_days"]
        for name, value in (("valuation_required_above_minor", threshold), ("valuation_max_age_days", max_age)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"R6 {name} must be a non-negative integer, got {value!r}")
        self._threshold: int = threshold
        self._max_age = timedelta(days=max_age)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not Stage.LISTING:
            return []
        product = ctx.snapshot.product
        if product is None:
            return [
                self.failed(code, self.text("no-product-in-listing-snapshot"), {"missing": ["product"]})
                for code in _CHECKS
            ]
        triggers = self._triggers(product)
        if not triggers["reasons"]:
            return [
                self.not_applicable(code, self.text("no-valuation-required-for-product"), triggers) for code in _CHECKS
            ]
        valuation = product.valuation
        if valuation is None:
            message = self.text("valuation-required-but-none-on")
            cause = self.failed(_CHECKS[0], message, triggers)
            return [cause, *(self.following(code, cause, message) for code in _CHECKS[1:])]
        today = ctx.now.date()
        return [
            self.passed("valuation", self.text("valuation-on-file"), {**triggers, "method": valuation.method}),
            self._method(valuation),
            self._assessor(valuation),
            self._current(valuation, today),
            self._value(product, valuation),
        ]

    def _triggers(self, product: ProductFacts) -> dict[str, Any]:
        threshold = self._threshold
        declared = product.valuation.value_minor if product.valuation is not None else None
        max_price = max((plan.price_minor for plan in product.plans), default=None)
        exclusive = product.licence is not None and product.licence.exclusive
        reasons: list[str] = []
        if declared is not None and declared > threshold:
            reasons.append("declared_value_above_threshold")
        if max_price is not None and max_price > threshold:
            reasons.append("plan_price_above_threshold")
        if exclusive:
            reasons.append("exclusive_licence")
        return {
            "threshold_minor": threshold,
            "declared_value_minor": declared,
            "max_plan_price_minor": max_price,
            "exclusive": exclusive,
            "reasons": reasons,
        }

    def _method(self, valuation: Valuation) -> Finding:
        evidence = {"method": valuation.method, "allowed": sorted(_METHODS)}
        if valuation.method not in _METHODS:
            return self.failed("valuation-method", self.text("valuation-method-not-cost-income"), evidence)
        return self.passed("valuation-method", self.text("valuation-uses-recognised-method"), evidence)

    def _assessor(self, valuation: Valuation) -> Finding:
        assessment = valuation.assessment
        evidence = {"assessor_id": assessment.assessor_id, "assessor_admitted": assessment.assessor_admitted}
        if not assessment.assessor_admitted:
            return self.failed("valuation-assessor", self.text("valuation-not-by-admitted-assessor"), evidence)
        return self.passed("valuation-assessor", self.text("valuation-by-admitted-assessor"), evidence)

    def _current(self, valuation: Valuation, today: date) -> Finding:
        assessment = valuation.assessment
        stated = assessment.valid_until
        expires = stated if stated is not None else assessment.issued_on + self._max_age
        evidence = {
            "issued_on": assessment.issued_on.isoformat(),
            "valid_until": stated.isoformat() if stated is not None else None,
            "expires_on": expires.isoformat(),
            "evaluated_on": today.isoformat(),
            "max_age_days": self._max_age.days,
        }
        if assessment.issued_on > today:
            return self.failed("valuation-current", self.text("valuation-dated-after-evaluation-date"), evidence)
        if expires < today:
            return self.failed("valuation-current", self.text("valuation-expired"), evidence)
        return self.passed("valuation-current", self.text("valuation-current"), evidence)

    def _value(self, product: ProductFacts, valuation: Valuation) -> Finding:
        plan_currencies = sorted({plan.currency for plan in product.plans})
        evidence = {
            "value_minor": valuation.value_minor,
            "currency": valuation.currency,
            "plan_currencies": plan_currencies,
        }
        if valuation.value_minor <= 0:
            return self.failed("valuation-value", self.text("valuation-value-not-positive"), evidence)
        if not is_currency(valuation.currency):
            return self.failed("valuation-value", self.text("valuation-currency-not-iso-4217"), evidence)
        if any(code != valuation.currency for code in plan_currencies):
            return self.failed("valuation-value", self.text("valuation-not-in-currency-plans"), evidence)
        return self.passed("valuation-value", self.text("value-positive-and-in-plans"), evidence)

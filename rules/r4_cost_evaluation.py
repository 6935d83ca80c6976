"""R4 数据产品成本评估指引 — Data product cost evaluation.

The rule text is a reconstruction: the official 2022 Guizhou guideline was not at hand, so the
checks below are derived from the rulebook table (RULEBOOK.md, row R4) and the accounting and
appraisal guidance it rests on. The *mechanism* is exact; the wording of the rule is ours.

Listing stage only: the provider declares what the product cost to make, so that its price
(R5) and value (R6) can be judged against it.

  - ``cost-declared``    a cost declaration is present, with its five components: collection,
                         processing, storage, compliance and other (the cost items of a data
                         resource under 《企业数据资源相关会计处理暂行规定》 (财会〔2023〕11号)
                         and the cost method of 《数据资产评估指导意见》 (中评协〔2023〕17号)).
  - ``non-negative``     no component and not the total is negative.
  - ``components-sum``   the five components add up to the total exactly (integer minor
                         units: no rounding tolerance is needed or given).
  - ``currency``         the declaration's currency is an ISO 4217 currency.
  - ``plan-currency``    every plan of the product is priced in the declaration's currency, so
                         cost and price compare without conversion; not applicable when the
                         product has no plan yet.
  - ``method``           the costing method is named and is one of ``allowed_methods``.

Without a product or without a cost declaration, every check fails (fail closed).

Parameters (defaults):
  - ``allowed_methods`` = [historical_cost, replacement_cost, activity_based]: 历史成本法 (the
    accounting measure of 财会〔2023〕11号), 重置成本法 (the cost approach of the appraisal
    guidance), 作业成本法 (activity-based costing, for products sharing one pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Stage
from marketplace.kit.codelists import is_currency

PASS = Outcome.PASS
FAIL = Outcome.FAIL
NA = Outcome.NOT_APPLICABLE

COMPONENTS = ("collection", "processing", "storage", "compliance", "other")


class CostEvaluationRule(Rule):
    id: ClassVar[str] = "R4"
    title_zh: ClassVar[str] = "数据产品成本评估指引"
    title_en: ClassVar[str] = "Data product cost evaluation"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "《企业数据资源相关会计处理暂行规定》 (财会〔2023〕11号)",
        "《数据资产评估指导意见》 (中评协〔2023〕17号)",
        "《数据二十条》 (2022)",
        "ISO 4217",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING})
    parameters: ClassVar[dict[str, Any]] = {
        "allowed_methods": ["historical_cost", "replacement_cost", "activity_based"],
    }
    messages: ClassVar[dict[str, str]] = {
        "no-product": "no product to evaluate",
        "no-cost": "no cost declaration to evaluate",
        "cost-declared.missing": "the product declares no cost (collection, processing, storage, compliance, other)",
        "cost-declared.ok": "the cost declaration is present",
        "non-negative.ok": "no cost is negative",
        "non-negative.fail": "costs cannot be negative: {negative}",
        "components-sum.ok": "the components add up to the total",
        "components-sum.fail": "the components add up to {sum}, not the declared total {total}",
        "currency.ok": "{currency} is an ISO 4217 currency",
        "currency.fail": "{currency!r} is not an ISO 4217 currency code",
        "plan-currency.no-plan": "the product has no plan yet",
        "plan-currency.ok": "every plan is priced in the cost currency",
        "plan-currency.fail": "plans are priced in another currency than the cost declaration ({currency})",
        "method.missing": "the cost declaration names no costing method",
        "method.ok": "the costing method {method} is accepted",
        "method.fail": "the costing method {method!r} is not one of {allowed}",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._methods = frozenset(str(m) for m in self.params["allowed_methods"])
        self._methods_sorted = tuple(sorted(self._methods))

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not Stage.LISTING:
            return []
        product = ctx.snapshot.product
        cost = None if product is None else product.cost
        if product is None or cost is None:
            message = self.text("no-product" if product is None else "no-cost")
            evidence = {"product": None if product is None else product.id, "cost": None}
            cause = self.failed(
                "cost-declared", self.text("cost-declared.missing") if product is not None else message, evidence
            )
            dependent = ("non-negative", "components-sum", "currency", "plan-currency", "method")
            return [cause, *(self.following(check, cause, message) for check in dependent)]

        components = {
            "collection": cost.collection_minor,
            "processing": cost.processing_minor,
            "storage": cost.storage_minor,
            "compliance": cost.compliance_minor,
            "other": cost.other_minor,
        }
        findings = [
            self.passed(
                "cost-declared",
                self.text("cost-declared.ok"),
                {"components_minor": dict(components), "total_minor": cost.total_minor, "currency": cost.currency},
            )
        ]

        negative = [name for name, value in components.items() if value < 0]
        if cost.total_minor < 0:
            negative.append("total")
        findings.append(
            self.check(
                "non-negative",
                not negative,
                self.text("non-negative.ok"),
                self.text("non-negative.fail", negative=", ".join(negative)),
                {"negative": negative, "components_minor": dict(components), "total_minor": cost.total_minor},
            )
        )

        added = sum(components.values())
        findings.append(
            self.check(
                "components-sum",
                added == cost.total_minor,
                self.text("components-sum.ok"),
                self.text("components-sum.fail", sum=added, total=cost.total_minor),
                {"sum_minor": added, "total_minor": cost.total_minor, "difference_minor": cost.total_minor - added},
            )
        )

        currency = cost.currency
        valid_currency = is_currency(currency)
        findings.append(
            self.check(
                "currency",
                valid_currency,
                self.text("currency.ok", currency=currency),
                self.text("currency.fail", currency=currency),
                {"currency": currency, "iso_4217": valid_currency},
            )
        )

        plans = product.plans
        if not plans:
            findings.append(
                self.not_applicable(
                    "plan-currency", self.text("plan-currency.no-plan"), {"currency": currency, "plans": 0}
                )
            )
        else:
            mismatched = [
                {"plan_id": plan.id, "currency": plan.currency} for plan in plans if plan.currency != currency
            ]
            findings.append(
                self.check(
                    "plan-currency",
                    not mismatched,
                    self.text("plan-currency.ok"),
                    self.text("plan-currency.fail", currency=currency),
                    {"currency": currency, "plans": len(plans), "mismatched": mismatched},
                )
            )

        method = (cost.method or "").strip()
        allowed = list(self._methods_sorted)
        if not method:
            findings.append(
                self.failed(
                    "method",
                    self.text("method.missing"),
                    {"method": cost.method, "allowed": allowed},
                )
            )
        else:
            findings.append(
                self.check(
                    "method",
                    method in self._methods,
                    self.text("method.ok", method=method),
                    self.text("method.fail", method=method, allowed=", ".join(allowed)),
                    {"method": method, "allowed": allowed},
                )
            )
        return findings

"""R3 数据交易安全评估指南 — Security assessment guidelines.

The rule text is a reconstruction: the official 2022 Guizhou guideline was not at hand, so the
checks below are derived from the rulebook table (RULEBOOK.md, row R3) and the articles it
rests on. The *mechanism* is exact; the wording of the rule is ours.

The checks run at listing, at trade and again at delivery, so a licence sold under an old
verdict is not delivered once the product has been graded core data, or once a risk or
cross-border assessment has expired.

  - ``grade-set``              the product carries a grade: general, important or core (DSL
                               Art. 21; GB/T 43697-2024).
  - ``core-data``              core data is never listed, traded or delivered (DSL Art. 21). A
                               product without a grade fails too: core cannot be ruled out.
  - ``risk-assessment``        important (or core) data carries a risk-assessment report by an
                               admitted assessor, issued by now and still valid; a report without
                               an expiry date is valid for ``risk_assessment_validity_months``
                               after issue (DSL Art. 30: periodic risk assessment of important
                               data). Not applicable to general data.
  - ``pi-protection``          personal information is de-identified (techniques declared) or
                               sold under the individuals' consent (PIPL Arts. 13 and 51,
                               GB/T 37964-2019). Not applicable without personal information.
  - ``delivery-mode``          the delivery mode is allowed for the grade
                               (``allowed_delivery_modes``): at listing every mode the product
                               offers, at trade the mode ordered, at delivery the mode actually
                               used (``delivery.mode``) — DSL Arts. 21 and 27.
  - ``sensitive-pi-delivery``  sensitive personal information goes only by the modes in
                               ``sensitive_pi_delivery_modes`` (PIPL Arts. 28 and 51): no raw
                               download. Not applicable without sensitive personal information.
  - ``cross-border``           a buyer outside the mainland (kit.codelists: a foreign ISO 3166
                               code, or a Taiwan, Hong Kong or Macao code) receiving important
                               data or personal information needs an outbound-transfer
                               assessment on file, issued by now and still valid; one without an
                               expiry date is valid for ``cross_border_validity_months`` (DSL
                               Art. 31, PIPL Arts. 38-40, 《数据出境安全评估办法》 Art. 4). A
                               buyer whose jurisdiction is not a known code is held for review;
                               a domestic buyer makes the check not applicable, as does the
                               listing stage (no buyer yet).
  - ``privacy-computing``      privacy computing (offered at listing, ordered at trade, used at
                               delivery) answers with differential privacy, so the product declares
                               in ``computation`` the epsilon a query spends (at most
                               ``max_epsilon_per_query``), the epsilon a licence may spend in all
                               (at most ``max_epsilon_budget``, and not below a query's) and
                               clamping bounds (lower below upper) for every measure column: without
                               them an aggregate answers a differencing attack exactly (two queries
                               that differ by one row give that row's value). Not applicable when
                               privacy computing is not in play (DSL Art. 27; PIPL Art. 51;
                               GB/T 37964-2019 Appendix B, the differential privacy model).

Missing facts the stage needs (no product; no trade at trade; no delivery at delivery; no
buyer at trade or delivery) fail the checks that need them.

Parameters (defaults):
  - ``allowed_delivery_modes`` = {general: [file, api, privacy_computing], important: [api,
    privacy_computing], core: []}: important data leaves only through a controlled API or
    privacy computing, never as a raw file; core data not at all. A grade missing from an
    operator's table allows no mode (fail closed).
  - ``sensitive_pi_delivery_modes`` = [api, privacy_computing], for the same reason.
  - ``risk_assessment_validity_months`` = 12: important-data risk assessments are yearly
    (Network Data Security Management Regulations 2024, Art. 33).
  - ``cross_border_validity_months`` = 36: the validity of an outbound-transfer security
    assessment result (Provisions on Promoting and Regulating Cross-border Data Flows 2024,
    Art. 9).
  - ``max_epsilon_per_query`` = 1.0 and ``max_epsilon_budget`` = 10.0: the most privacy loss the
    exchange lets one query, and one licence, spend. An epsilon of 1 per answer is the usual ceiling
    of "strong" protection; 10 over a licence's life still bounds how far answers can narrow one
    person down.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Stage, Text, make_finding
from marketplace.compliance.snapshots import Assessment, ComputationFacts, OrganizationFacts, ProductFacts, Snapshot
from marketplace.kit.codelists import jurisdiction_scope

PASS = Outcome.PASS
FAIL = Outcome.FAIL
REVIEW = Outcome.REVIEW
NA = Outcome.NOT_APPLICABLE
LISTING = Stage.LISTING
TRADE = Stage.TRADE

_GRADE_BASIS = ("DSL Art. 21", "GB/T 43697-2024")
_CORE_BASIS = ("DSL Art. 21",)
_RISK_BASIS = ("DSL Art. 30", "DSL Art. 21")
_PI_BASIS = ("PIPL Art. 13", "PIPL Art. 51", "GB/T 37964-2019")
_MODE_BASIS = ("DSL Art. 21", "DSL Art. 27")
_SENSITIVE_BASIS = ("PIPL Art. 28", "PIPL Art. 51")
_CROSS_BORDER_BASIS = ("DSL Art. 31", "PIPL Art. 38", "PIPL Art. 40", "《数据出境安全评估办法》 Art. 4")
_PRIVACY_BASIS = ("DSL Art. 27", "PIPL Art. 51", "GB/T 37964-2019 Appendix B")
PRIVACY_COMPUTING = "privacy_computing"

_STAGES = frozenset({Stage.LISTING, Stage.TRADE, Stage.DELIVERY})
_ASSESSED_GRADES = frozenset({"important", "core"})


def months_after(day: date, months: int) -> date:
    """The same day `months` calendar months later (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class SecurityAssessmentRule(Rule):
    id: ClassVar[str] = "R3"
    title_zh: ClassVar[str] = "数据交易安全评估指南"
    title_en: ClassVar[str] = "Security assessment guidelines"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "DSL Art. 21",
        "DSL Art. 27",
        "DSL Art. 30",
        "DSL Art. 31",
        "PIPL Art. 28",
        "PIPL Art. 38",
        "PIPL Art. 40",
        "PIPL Art. 51",
        "《数据出境安全评估办法》 Art. 4",
        "GB/T 43697-2024",
        "GB/T 37964-2019",
        "GB/T 37964-2019 Appendix B",
    )
    stages: ClassVar[frozenset[Stage]] = _STAGES
    parameters: ClassVar[dict[str, Any]] = {
        "allowed_delivery_modes": {
            "general": ["file", "api", "privacy_computing"],
            "important": ["api", "privacy_computing"],
            "core": [],
        },
        "sensitive_pi_delivery_modes": ["api", "privacy_computing"],
        "risk_assessment_validity_months": 12,
        "cross_border_validity_months": 36,
        "max_epsilon_per_query": 1.0,
        "max_epsilon_budget": 10.0,
    }

    messages: ClassVar[dict[str, str]] = {
        "product-graded": "the product is graded {grade}",
        "product-no-data-grade-general": "the product has no data grade (general, important or core)",
        "data-grade-not-general-important": "the data grade {declared!r} is not general, important or core",
        "no-product-in-snapshot-cannot": "no product in the snapshot; cannot assess",
        "core-data-never-traded-or": "core data is never traded or delivered (stage: {value})",
        "product-no-grade-core-data": "the product has no grade, so core data cannot be ruled out",
        "data-not-core-data": "{grade} data is not core data",
        "data-needs-no-risk-assessment": "{grade} data needs no risk-assessment report",
        "product-no-grade-risk-assessment": (
            "the product has no grade, so a risk-assessment report is required, and none is on file"
        ),
        "data-needs-risk-assessment-report": "{grade} data needs a risk-assessment report and none is on file",
        "risk-assessment-not-by-admitted": "the risk assessment is not by an admitted assessor",
        "risk-assessment-report.future": "the risk-assessment report is dated in the future",
        "risk-assessment-report.expired": "the risk-assessment report has expired",
        "valid-risk-assessment-report-on": "a valid risk-assessment report is on file",
        "product-contains-no-personal-information": "the product contains no personal information",
        "personal-information-de-identified": "personal information is de-identified",
        "personal-information-sold-under-individuals": "personal information is sold under the individuals' consent",
        "personal-information-neither-de-identified": (
            "personal information is neither de-identified nor sold under consent"
        ),
        "snapshot-no-delivery-mode-cannot": (
            "the {value} snapshot has no {missing}; the delivery mode cannot be checked"
        ),
        "no-delivery-mode-offered-yet": "no delivery mode is offered yet",
        "product-no-grade-no-delivery": "the product has no grade, so no delivery mode can be allowed",
        "no-delivery-mode-configured-for": "no delivery mode is configured for {grade} data",
        "data-may-not-delivered-by": "{grade} data may not be delivered by {bad}",
        "delivery-mode-allowed-for-data": "the delivery mode is allowed for {grade} data",
        "product-contains-no-sensitive-personal": "the product contains no sensitive personal information",
        "sensitive-personal-information-may-not": "sensitive personal information may not be delivered by {bad}",
        "delivery-mode-allowed-for-sensitive": "the delivery mode is allowed for sensitive personal information",
        "no-buyer-at-listing-outbound": "no buyer at listing; outbound-transfer checks run at trade and delivery",
        "snapshot-no-buyer-jurisdiction-cannot": (
            "the {value} snapshot has no buyer; its jurisdiction cannot be checked"
        ),
        "buyer-in-mainland-no-outbound": "the buyer is in the mainland; no outbound transfer",
        "buyer-jurisdiction-not-known-code": (
            "the buyer's jurisdiction is not a known code; an administrator must decide whether this is an "
            "outbound transfer"
        ),
        "general-data-without-personal-information": (
            "general data without personal information may go to a buyer abroad"
        ),
        "outbound-transfer-data-needs-cross": (
            "an outbound transfer of this data needs a cross-border assessment and none is on file: the "
            "data stays in the country"
        ),
        "cross-border-assessment.future": "the cross-border assessment is dated in the future",
        "cross-border-assessment.expired": "the cross-border assessment has expired",
        "privacy.no-epsilon": "no epsilon per query and per licence",
        "privacy.query-epsilon": "the epsilon per query ({query}) is not above 0 and at most {limit}",
        "privacy.budget-epsilon": "the epsilon budget per licence ({budget}) is above {max_budget}",
        "privacy.unbounded": "no clamping bounds for {columns}",
        "privacy.disordered": "bounds whose lower is not below upper for {columns}",
        "valid-cross-border-assessment-covers": "a valid cross-border assessment covers the outbound transfer",
        "snapshot-no-privacy-terms-cannot": (
            "the {value} snapshot has no {missing}; the privacy terms cannot be checked"
        ),
        "privacy-computing-not-in-play": "privacy computing is not in play",
        "privacy-computing-needs-differential-privacy": (
            "privacy computing needs differential privacy terms: {problems}"
        ),
        "privacy-computing-answers-with-differential": (
            "privacy computing answers with differential privacy under the declared terms"
        ),
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        table = p["allowed_delivery_modes"]
        self._allowed: dict[str, frozenset[str]] = {str(g): frozenset(str(m) for m in ms) for g, ms in table.items()}
        self._allowed_sorted: dict[str, tuple[str, ...]] = {g: tuple(sorted(ms)) for g, ms in self._allowed.items()}
        self._sensitive = frozenset(str(m) for m in p["sensitive_pi_delivery_modes"])
        self._sensitive_sorted = tuple(sorted(self._sensitive))
        self._risk_months = int(p["risk_assessment_validity_months"])
        self._cross_months = int(p["cross_border_validity_months"])
        self._max_query_epsilon = float(p["max_epsilon_per_query"])
        self._max_budget_epsilon = float(p["max_epsilon_budget"])
        rid = self.id
        self._c_grade = f"{rid}.grade-set"
        self._c_core = f"{rid}.core-data"
        self._c_risk = f"{rid}.risk-assessment"
        self._c_pi = f"{rid}.pi-protection"
        self._c_mode = f"{rid}.delivery-mode"
        self._c_sensitive = f"{rid}.sensitive-pi-delivery"
        self._c_cross = f"{rid}.cross-border"
        self._c_privacy = f"{rid}.privacy-computing"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        stage = ctx.stage
        if stage not in _STAGES:
            return []
        snapshot = ctx.snapshot
        product = snapshot.product
        if product is None:
            return self._no_product()
        modes, missing = _modes(stage, snapshot)
        return self._judge(stage, product, snapshot.buyer, modes, missing, ctx.now.date())

    def _judge(
        self,
        stage: Stage,
        product: ProductFacts,
        buyer: OrganizationFacts | None,
        modes: tuple[str, ...],
        missing: str | None,
        today: date,
    ) -> list[Finding]:
        grade = product.known_grade  # a grade outside the vocabulary is no grade: every check fails closed
        return [
            self._grade_set(product.grade, grade),
            self._core(grade, stage),
            self._risk(product, today),
            self._pi(product),
            self._mode(grade, modes, missing, stage),
            self._sensitive_mode(product, modes, missing, stage),
            self._cross_border(product, buyer, stage, today),
            self._privacy(product, modes, missing, stage),
        ]

    def _grade_set(self, declared: str | None, grade: str | None) -> Finding:
        rid, code = self.id, self._c_grade
        if grade is not None:
            return make_finding(
                rid, code, PASS, self.text("product-graded", grade=grade), {"grade": grade}, _GRADE_BASIS
            )
        if declared is None:
            message = self.text("product-no-data-grade-general")
        else:
            message = self.text("data-grade-not-general-important", declared=declared)
        return make_finding(rid, code, FAIL, message, {"grade": declared}, _GRADE_BASIS)

    def _no_product(self) -> list[Finding]:
        rid = self.id
        message = self.text("no-product-in-snapshot-cannot")
        missing = {"product": None}
        return [
            make_finding(rid, self._c_grade, FAIL, message, missing, _GRADE_BASIS),
            make_finding(rid, self._c_core, FAIL, message, missing, _CORE_BASIS),
            make_finding(rid, self._c_risk, FAIL, message, missing, _RISK_BASIS),
            make_finding(rid, self._c_pi, FAIL, message, missing, _PI_BASIS),
            make_finding(rid, self._c_mode, FAIL, message, missing, _MODE_BASIS),
            make_finding(rid, self._c_sensitive, FAIL, message, missing, _SENSITIVE_BASIS),
            make_finding(rid, self._c_cross, FAIL, message, missing, _CROSS_BORDER_BASIS),
            make_finding(rid, self._c_privacy, FAIL, message, missing, _PRIVACY_BASIS),
        ]

    def _core(self, grade: str | None, stage: Stage) -> Finding:
        rid, code = self.id, self._c_core
        evidence = {"grade": grade, "stage": stage.value}
        if grade == "core":
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("core-data-never-traded-or", value=stage.value),
                evidence,
                _CORE_BASIS,
            )
        if grade is None:
            return make_finding(rid, code, FAIL, self.text("product-no-grade-core-data"), evidence, _CORE_BASIS)
        return make_finding(rid, code, PASS, self.text("data-not-core-data", grade=grade), evidence, _CORE_BASIS)

    def _risk(self, product: ProductFacts, today: date) -> Finding:
        rid, code = self.id, self._c_risk
        grade = product.known_grade
        if grade is not None and grade not in _ASSESSED_GRADES:
            return make_finding(
                rid, code, NA, self.text("data-needs-no-risk-assessment", grade=grade), {"grade": grade}, _RISK_BASIS
            )
        report = product.risk_assessment
        if report is None:
            message = (
                self.text("product-no-grade-risk-assessment")
                if grade is None
                else self.text("data-needs-risk-assessment-report", grade=grade)
            )
            return make_finding(rid, code, FAIL, message, {"grade": grade, "report": None}, _RISK_BASIS)
        evidence = _assessment_evidence(report, today, self._risk_months)
        evidence["grade"] = grade
        if not report.assessor_admitted:
            return make_finding(rid, code, FAIL, self.text("risk-assessment-not-by-admitted"), evidence, _RISK_BASIS)
        problem = _validity_problem(report, today, self._risk_months)
        if problem is not None:
            return make_finding(rid, code, FAIL, self.text(f"risk-assessment-report.{problem}"), evidence, _RISK_BASIS)
        return make_finding(rid, code, PASS, self.text("valid-risk-assessment-report-on"), evidence, _RISK_BASIS)

    def _pi(self, product: ProductFacts) -> Finding:
        rid, code = self.id, self._c_pi
        if not (product.contains_personal_info or product.contains_sensitive_personal_info):
            return make_finding(
                rid,
                code,
                NA,
                self.text("product-contains-no-personal-information"),
                {"contains_personal_info": False},
                _PI_BASIS,
            )
        techniques = product.deidentification_techniques
        consent = product.sold_under_consent
        evidence = {
            "contains_personal_info": True,
            "contains_sensitive_personal_info": product.contains_sensitive_personal_info,
            "deidentification_techniques": list(techniques),
            "sold_under_consent": consent,
        }
        if techniques:
            return make_finding(rid, code, PASS, self.text("personal-information-de-identified"), evidence, _PI_BASIS)
        if consent:
            return make_finding(
                rid, code, PASS, self.text("personal-information-sold-under-individuals"), evidence, _PI_BASIS
            )
        return make_finding(
            rid,
            code,
            FAIL,
            self.text("personal-information-neither-de-identified"),
            evidence,
            _PI_BASIS,
        )

    def _mode(self, grade: str | None, modes: tuple[str, ...], missing: str | None, stage: Stage) -> Finding:
        rid, code = self.id, self._c_mode
        if missing is not None:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("snapshot-no-delivery-mode-cannot", value=stage.value, missing=missing),
                {"grade": grade, missing: None},
                _MODE_BASIS,
            )
        allowed = self._allowed.get(grade) if grade is not None else None
        allowed_list = list(self._allowed_sorted.get(grade, ())) if grade is not None else []
        evidence: dict[str, Any] = {"grade": grade, "modes": list(modes), "allowed": allowed_list}
        if not modes:
            return make_finding(rid, code, NA, self.text("no-delivery-mode-offered-yet"), evidence, _MODE_BASIS)
        if allowed is None:
            message = (
                self.text("product-no-grade-no-delivery")
                if grade is None
                else self.text("no-delivery-mode-configured-for", grade=grade)
            )
            evidence["not_allowed"] = list(modes)
            return make_finding(rid, code, FAIL, message, evidence, _MODE_BASIS)
        bad = [m for m in modes if m not in allowed]
        evidence["not_allowed"] = bad
        if bad:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("data-may-not-delivered-by", grade=grade, bad=", ".join(bad)),
                evidence,
                _MODE_BASIS,
            )
        return make_finding(
            rid, code, PASS, self.text("delivery-mode-allowed-for-data", grade=grade), evidence, _MODE_BASIS
        )

    def _sensitive_mode(
        self, product: ProductFacts, modes: tuple[str, ...], missing: str | None, stage: Stage
    ) -> Finding:
        rid, code = self.id, self._c_sensitive
        if not product.contains_sensitive_personal_info:
            return make_finding(
                rid,
                code,
                NA,
                self.text("product-contains-no-sensitive-personal"),
                {"contains_sensitive_personal_info": False},
                _SENSITIVE_BASIS,
            )
        if missing is not None:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("snapshot-no-delivery-mode-cannot", value=stage.value, missing=missing),
                {"contains_sensitive_personal_info": True, missing: None},
                _SENSITIVE_BASIS,
            )
        bad = [m for m in modes if m not in self._sensitive]
        evidence = {
            "contains_sensitive_personal_info": True,
            "modes": list(modes),
            "allowed": list(self._sensitive_sorted),
            "not_allowed": bad,
        }
        if not modes:
            return make_finding(rid, code, NA, self.text("no-delivery-mode-offered-yet"), evidence, _SENSITIVE_BASIS)
        if bad:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("sensitive-personal-information-may-not", bad=", ".join(bad)),
                evidence,
                _SENSITIVE_BASIS,
            )
        return make_finding(
            rid,
            code,
            PASS,
            self.text("delivery-mode-allowed-for-sensitive"),
            evidence,
            _SENSITIVE_BASIS,
        )

    def _cross_border(
        self, product: ProductFacts, buyer: OrganizationFacts | None, stage: Stage, today: date
    ) -> Finding:
        rid, code = self.id, self._c_cross
        if stage is LISTING:
            return make_finding(
                rid,
                code,
                NA,
                self.text("no-buyer-at-listing-outbound"),
                {"stage": stage.value},
                _CROSS_BORDER_BASIS,
            )
        if buyer is None:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("snapshot-no-buyer-jurisdiction-cannot", value=stage.value),
                {"buyer": None},
                _CROSS_BORDER_BASIS,
            )
        jurisdiction = buyer.jurisdiction
        scope = jurisdiction_scope(jurisdiction)
        if scope == "domestic":
            return make_finding(
                rid,
                code,
                NA,
                self.text("buyer-in-mainland-no-outbound"),
                {"buyer_jurisdiction": jurisdiction, "scope": scope},
                _CROSS_BORDER_BASIS,
            )
        if scope is None:
            return make_finding(
                rid,
                code,
                REVIEW,
                self.text("buyer-jurisdiction-not-known-code"),
                {"buyer_jurisdiction": jurisdiction, "scope": None},
                _CROSS_BORDER_BASIS,
            )
        grade = product.known_grade
        reasons: list[str] = []
        if grade is None:
            reasons.append("grade_not_set")
        elif grade in _ASSESSED_GRADES:
            reasons.append(f"grade_{grade}")
        if product.contains_personal_info or product.contains_sensitive_personal_info:
            reasons.append("personal_information")
        if not reasons:
            return make_finding(
                rid,
                code,
                PASS,
                self.text("general-data-without-personal-information"),
                {"buyer_jurisdiction": jurisdiction, "scope": scope, "grade": grade, "requires_assessment": False},
                _CROSS_BORDER_BASIS,
            )
        report = product.cross_border_assessment
        if report is None:
            return make_finding(
                rid,
                code,
                FAIL,
                self.text("outbound-transfer-data-needs-cross"),
                {
                    "buyer_jurisdiction": jurisdiction,
                    "scope": scope,
                    "grade": grade,
                    "requires_assessment": True,
                    "required_because": reasons,
                    "report": None,
                },
                _CROSS_BORDER_BASIS,
            )
        evidence = _assessment_evidence(report, today, self._cross_months)
        evidence.update(
            buyer_jurisdiction=jurisdiction,
            scope=scope,
            grade=grade,
            requires_assessment=True,
            required_because=reasons,
        )
        problem = _validity_problem(report, today, self._cross_months)
        if problem is not None:
            return make_finding(
                rid, code, FAIL, self.text(f"cross-border-assessment.{problem}"), evidence, _CROSS_BORDER_BASIS
            )
        return make_finding(
            rid,
            code,
            PASS,
            self.text("valid-cross-border-assessment-covers"),
            evidence,
            _CROSS_BORDER_BASIS,
        )

    def _privacy(self, product: ProductFacts, modes: tuple[str, ...], missing: str | None, stage: Stage) -> Finding:
        rid, code = self.id, self._c_privacy
        if missing is not None:
            message = self.text("snapshot-no-privacy-terms-cannot", value=stage.value, missing=missing)
            return make_finding(rid, code, FAIL, message, {missing: None}, _PRIVACY_BASIS)
        if PRIVACY_COMPUTING not in modes:
            message = self.text("privacy-computing-not-in-play")
            return make_finding(rid, code, NA, message, {"modes": list(modes)}, _PRIVACY_BASIS)
        terms = product.computation or ComputationFacts()
        evidence = {
            "epsilon_per_query": terms.epsilon_per_query,
            "epsilon_budget": terms.epsilon_budget,
            "measures": list(terms.measure),
            "bounded": sorted(terms.bounds or {}),
            "max_epsilon_per_query": self._max_query_epsilon,
            "max_epsilon_budget": self._max_budget_epsilon,
        }
        problems = _privacy_problems(self, terms, self._max_query_epsilon, self._max_budget_epsilon)
        if problems:
            message = self.text("privacy-computing-needs-differential-privacy", problems=problems)
            listed = [problem.render() for problem in problems]
            return make_finding(rid, code, FAIL, message, {**evidence, "problems": listed}, _PRIVACY_BASIS)
        message = self.text("privacy-computing-answers-with-differential")
        return make_finding(rid, code, PASS, message, evidence, _PRIVACY_BASIS)


def _privacy_problems(rule: Rule, terms: ComputationFacts, max_query: float, max_budget: float) -> list[Text]:
    """What keeps the declared terms from making every answer differentially private, within the limits."""
    query, budget, bounds = terms.epsilon_per_query, terms.epsilon_budget, terms.bounds or {}
    problems = []
    if query is None or budget is None:
        problems.append(rule.text("privacy.no-epsilon"))
    elif not 0 < query <= min(budget, max_query):
        problems.append(rule.text("privacy.query-epsilon", query=query, limit=min(budget, max_query)))
    elif budget > max_budget:
        problems.append(rule.text("privacy.budget-epsilon", budget=budget, max_budget=max_budget))
    if unbounded := [column for column in terms.measure if column not in bounds]:
        problems.append(rule.text("privacy.unbounded", columns=str(unbounded)))
    if disordered := sorted(column for column, b in bounds.items() if not b.lower < b.upper):
        problems.append(rule.text("privacy.disordered", columns=str(disordered)))
    return problems


def _modes(stage: Stage, snapshot: Snapshot) -> tuple[tuple[str, ...], str | None]:
    """The delivery modes the stage judges, or the name of the missing part."""
    if stage is LISTING:
        product = snapshot.product
        return (product.delivery_modes if product is not None else ()), None
    if stage is TRADE:
        trade = snapshot.trade
        return ((trade.delivery_mode,), None) if trade is not None else ((), "trade")
    delivery = snapshot.delivery
    return ((delivery.mode,), None) if delivery is not None else ((), "delivery")


def _valid_until(report: Assessment, default_months: int) -> date:
    return report.valid_until or months_after(report.issued_on, default_months)


def _assessment_evidence(report: Assessment, today: date, default_months: int) -> dict[str, Any]:
    return {
        "assessor_id": report.assessor_id,
        "assessor_admitted": report.assessor_admitted,
        "reference": report.reference,
        "issued_on": report.issued_on.isoformat(),
        "valid_until": _valid_until(report, default_months).isoformat(),
        "expiry_stated": report.valid_until is not None,
        "checked_on": today.isoformat(),
    }


def _validity_problem(report: Assessment, today: date, default_months: int) -> str | None:
    """What is wrong with a report's dates, as the key of its message: `future` or `expired`."""
    if report.issued_on > today:
        return "future"
    if _valid_until(report, default_months) < today:
        return "expired"
    return None

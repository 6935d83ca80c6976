"""S3 — GB/T 35273-2020 个人信息安全规范 (personal information security specification).

The rule text is a reconstruction: the official texts of the exchange's "eight rules and ten
standards" were not at hand. The checks rest on GB/T 35273-2020 (purpose specification and
minimisation §4 and §5.2, consent and explicit consent for sensitive PI §5.4, use limited to
the purpose §7.3, sharing with third parties §9.2) and on PIPL Arts. 6, 13, 14, 23 and 29.

Stages: `listing` and `trade`. Every check is `not_applicable` unless the product holds
personal information: flagged `contains_personal_info` or `contains_sensitive_personal_info`,
or any field marked personal or sensitive (the widest reading, so that a product whose flags
disagree with its schema is still checked; S2 reports the disagreement). A snapshot without a
product fails every check of the stage (fail closed).

"Consent-based" below means the PI legal basis is `consent`, or the product is sold under
the data subjects' consent (the consent then has to cover the buyer's use too).

Checks:
  - `consented-purposes` (listing, trade): consent-based PI has its consented purposes
    recorded (GB/T 35273 §5.4; PIPL Art. 14); otherwise `not_applicable`.
  - `scenario-within-consent` (trade): for consent-based PI, the buyer's declared scenario is
    one of the consented purposes (GB/T 35273 §7.3, §9.2; PIPL Art. 23); a trade without a
    scenario fails.
  - `field-purposes` (listing): every personal field names at least one purpose it is needed
    for, so minimality can be judged per scenario (GB/T 35273 §5.2; PIPL Art. 6). A PI
    product whose schema marks no field personal cannot be judged -> review.
  - `field-minimality` (trade): no personal field is delivered for a scenario it is not
    needed for: personal fields whose purposes omit the buyer's scenario fail (evidence lists
    the field names, never values); `not_applicable` when no field is marked personal.
  - `sensitive-consent` (listing, trade): sensitive PI has separate consent (GB/T 35273 §5.4;
    PIPL Art. 29); `not_applicable` without sensitive PI.

Parameters:
  - `excess_fields_review` (bool, default false): true sends `field-minimality` violations to
    review instead of failing them (for exchanges that let an administrator agree a narrower
    delivery with the provider).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Message, Outcome, Rule, RuleContext, Severity, Stage, make_finding
from marketplace.compliance.snapshots import FieldSpec, ProductFacts, TradeFacts

PASS = Outcome.PASS
FAIL = Outcome.FAIL
NA = Outcome.NOT_APPLICABLE
LISTING = Stage.LISTING
TRADE = Stage.TRADE

_LISTING_CHECKS: Final = ("consented-purposes", "field-purposes", "sensitive-consent")
_TRADE_CHECKS: Final = ("consented-purposes", "scenario-within-consent", "field-minimality", "sensitive-consent")


class PersonalInformationStandard(Rule):
    id: ClassVar[str] = "S3"
    title_zh: ClassVar[str] = "个人信息安全规范（GB/T 35273-2020）"
    title_en: ClassVar[str] = "GB/T 35273-2020 personal information security specification"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 35273-2020 §4 (purpose specification, minimisation)",
        "GB/T 35273-2020 §5.2 (minimum necessary)",
        "GB/T 35273-2020 §5.4 (consent; explicit consent for sensitive personal information)",
        "GB/T 35273-2020 §7.3 (use limited to the purpose)",
        "GB/T 35273-2020 §9.2 (sharing and transfer)",
        "PIPL Art. 6",
        "PIPL Art. 13",
        "PIPL Art. 14",
        "PIPL Art. 23",
        "PIPL Art. 29",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING, Stage.TRADE})
    parameters: ClassVar[Mapping[str, Any]] = {"excess_fields_review": False}
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "not-under-consent": "the personal information is neither processed nor sold under consent",
        "product-holds-no-personal-information": "the product holds no personal information",
        "snapshot-no-product": "the {value} snapshot has no product",
        "product-holds-no-sensitive-personal": "the product holds no sensitive personal information",
        "purposes-data-subjects-consented-to": "the purposes the data subjects consented to are recorded",
        "personal-information-rests-on-consent": (
            "the personal information rests on consent but no consented purpose is recorded"
        ),
        "trade-snapshot-no-trade": "the trade snapshot has no trade",
        "buyer-declares-no-application-scenario": (
            "the buyer declares no application scenario, so it cannot be within the consented purposes"
        ),
        "buyer-scenario-within-purposes-data": (
            "the buyer's scenario is within the purposes the data subjects consented to"
        ),
        "buyer-scenario-not-among-purposes": (
            "the buyer's scenario {scenario!r} is not among the purposes the data subjects consented to"
        ),
        "product-holds-personal-information-but": (
            "the product holds personal information but its field schema marks no field personal; "
            "minimality cannot be judged, an administrator decides"
        ),
        "every-personal-field-names-purposes": "every personal field names the purposes it is needed for",
        "personal-fields-name-no-purpose": "personal fields {missing} name no purpose they are needed for",
        "no-field-marked-personal": "no field is marked personal",
        "buyer-declares-no-application-scenario-2": (
            "the buyer declares no application scenario, so the personal fields needed cannot be judged"
        ),
        "every-personal-field-delivered-needed": "every personal field delivered is needed for the buyer's scenario",
        "personal-fields-not-needed-for": (
            "personal fields {excess} are not needed for the buyer's scenario {scenario!r}"
        ),
        "separate-consent-covers-sensitive-personal": "separate consent covers the sensitive personal information",
        "product-holds-sensitive-personal-information": (
            "the product holds sensitive personal information without separate consent"
        ),
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._excess_outcome = Outcome.REVIEW if self.params["excess_fields_review"] else Outcome.FAIL
        self._codes = {check: f"{self.id}.{check}" for check in (*_LISTING_CHECKS, *_TRADE_CHECKS)}
        # Findings that depend only on the parameters are built once. They are shared by every
        # verdict, so their evidence is read-only.
        reason = self.text("product-holds-no-personal-information")
        no_pi = MappingProxyType({"contains_personal_info": False})
        self._no_pi: dict[Stage, list[Finding]] = {
            Stage.LISTING: [self.not_applicable(c, reason, no_pi) for c in _LISTING_CHECKS],
            Stage.TRADE: [self.not_applicable(c, reason, no_pi) for c in _TRADE_CHECKS],
        }
        self._no_product: dict[Stage, list[Finding]] = {
            stage: [
                self.failed(c, self.text("snapshot-no-product", value=stage.value), MappingProxyType({"product": None}))
                for c in checks
            ]
            for stage, checks in ((Stage.LISTING, _LISTING_CHECKS), (Stage.TRADE, _TRADE_CHECKS))
        }
        # sensitive-consent without sensitive PI, keyed by the separate-consent flag.
        self._no_sensitive: dict[bool, Finding] = {
            flag: self.not_applicable(
                "sensitive-consent",
                self.text("product-holds-no-sensitive-personal"),
                MappingProxyType({"contains_sensitive_personal_info": False, "separate_consent_for_sensitive": flag}),
            )
            for flag in (False, True)
        }

    def _emit(self, check: str, outcome: Outcome, message: Message, evidence: dict[str, Any]) -> Finding:
        """`self.finding` without the string building: the trade stage's fast path."""
        return make_finding(self.id, self._codes[check], outcome, message, evidence, self.basis)

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        stage = ctx.stage
        if stage is not LISTING and stage is not TRADE:
            return []
        product = ctx.snapshot.product
        if product is None:
            return list(self._no_product[stage])
        trade = ctx.snapshot.trade if stage is TRADE else None
        return self._judge(stage, product, trade)

    def _judge(self, stage: Stage, product: ProductFacts, trade: TradeFacts | None) -> list[Finding]:
        # One pass over the schema. A sensitive field is personal information whatever its
        # `personal` flag says (PIPL Art. 28).
        personal: list[FieldSpec] = []
        sensitive: list[str] = []
        for spec in product.fields:
            if spec.sensitive:
                sensitive.append(spec.name)
                personal.append(spec)
            elif spec.personal:
                personal.append(spec)
        holds_spi = product.contains_sensitive_personal_info or bool(sensitive)
        if not (product.contains_personal_info or holds_spi or personal):
            return list(self._no_pi[stage])
        consent_based = product.sold_under_consent or product.pi_legal_basis == "consent"
        if holds_spi:
            sensitive_finding = self._sensitive_consent(product, sensitive)
        else:
            sensitive_finding = self._no_sensitive[product.separate_consent_for_sensitive]
        if stage is LISTING:
            return [
                self._consented_purposes(product, consent_based),
                self._field_purposes(personal),
                sensitive_finding,
            ]
        scenario = trade.scenario if trade is not None else None
        return [
            self._consented_purposes(product, consent_based),
            self._scenario_within_consent(product, trade, scenario, consent_based),
            self._field_minimality(personal, scenario),
            sensitive_finding,
        ]

    def _consented_purposes(self, product: ProductFacts, consent_based: bool) -> Finding:
        evidence = {
            "pi_legal_basis": product.pi_legal_basis,
            "sold_under_consent": product.sold_under_consent,
            "consented_purposes": list(product.consented_purposes),
        }
        if not consent_based:
            return self._emit("consented-purposes", NA, self.text("not-under-consent"), evidence)
        if product.consented_purposes:
            return self._emit("consented-purposes", PASS, self.text("purposes-data-subjects-consented-to"), evidence)
        return self._emit(
            "consented-purposes",
            FAIL,
            self.text("personal-information-rests-on-consent"),
            evidence,
        )

    def _scenario_within_consent(
        self, product: ProductFacts, trade: TradeFacts | None, scenario: str | None, consent_based: bool
    ) -> Finding:
        evidence = {"scenario": scenario, "consented_purposes": list(product.consented_purposes)}
        if not consent_based:
            return self._emit("scenario-within-consent", NA, self.text("not-under-consent"), evidence)
        if trade is None:
            return self._emit("scenario-within-consent", FAIL, self.text("trade-snapshot-no-trade"), evidence)
        if not scenario:
            return self._emit(
                "scenario-within-consent",
                FAIL,
                self.text("buyer-declares-no-application-scenario"),
                evidence,
            )
        if scenario in product.consented_purposes:
            return self._emit(
                "scenario-within-consent",
                PASS,
                self.text("buyer-scenario-within-purposes-data"),
                evidence,
            )
        return self._emit(
            "scenario-within-consent",
            FAIL,
            self.text("buyer-scenario-not-among-purposes", scenario=scenario),
            evidence,
        )

    def _field_purposes(self, personal: list[FieldSpec]) -> Finding:
        if not personal:
            return self.review(
                "field-purposes",
                self.text("product-holds-personal-information-but"),
                {"personal_fields": 0, "fields_without_purpose": []},
            )
        missing = [f.name for f in personal if not f.purposes]
        return self.check(
            "field-purposes",
            not missing,
            self.text("every-personal-field-names-purposes"),
            self.text("personal-fields-name-no-purpose", missing=missing),
            {"personal_fields": len(personal), "fields_without_purpose": missing},
        )

    def _field_minimality(self, personal: list[FieldSpec], scenario: str | None) -> Finding:
        if not personal:
            return self._emit(
                "field-minimality",
                NA,
                self.text("no-field-marked-personal"),
                {"scenario": scenario, "personal_fields": 0},
            )
        if not scenario:
            return self._emit(
                "field-minimality",
                FAIL,
                self.text("buyer-declares-no-application-scenario-2"),
                {"scenario": scenario, "personal_fields": len(personal)},
            )
        excess = [f.name for f in personal if scenario not in f.purposes]
        evidence = {"scenario": scenario, "personal_fields": len(personal), "excess_fields": excess}
        if not excess:
            return self._emit(
                "field-minimality",
                PASS,
                self.text("every-personal-field-delivered-needed"),
                evidence,
            )
        return self._emit(
            "field-minimality",
            self._excess_outcome,
            self.text("personal-fields-not-needed-for", excess=excess, scenario=scenario),
            evidence,
        )

    def _sensitive_consent(self, product: ProductFacts, sensitive: list[str]) -> Finding:
        evidence = {
            "contains_sensitive_personal_info": product.contains_sensitive_personal_info,
            "separate_consent_for_sensitive": product.separate_consent_for_sensitive,
            "sensitive_fields": sensitive,
        }
        if product.separate_consent_for_sensitive:
            return self._emit(
                "sensitive-consent",
                PASS,
                self.text("separate-consent-covers-sensitive-personal"),
                evidence,
            )
        return self._emit(
            "sensitive-consent",
            FAIL,
            self.text("product-holds-sensitive-personal-information"),
            evidence,
        )

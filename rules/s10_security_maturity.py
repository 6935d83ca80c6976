"""S10 — GB/T 37988-2019 数据安全能力成熟度模型 (data security capability maturity model, DSMM).

The rule text is a reconstruction: neither the official Guizhou rule texts nor the text of
GB/T 37988-2019 was at hand. DSMM rates an organisation's data security capability on five
levels (§5.3: 1 performed informally, 2 planned and tracked, 3 well defined, 4 quantitatively
controlled, 5 continuously optimised); the platform records the assessed level as
``dsmm_level`` (0 = no assessed level). The data security law asks whoever processes data to
protect it in proportion to its grade (DSL Arts. 21 and 27; important data: Art. 30), so the
exchange asks a level that rises with the grade of the data an organisation handles.

Checks
  admission (``snapshot.organization``; none -> fail)
    level-recorded            ``dsmm_level`` is within 0-5; outside -> fail.
    level-for-declared-grade  providers and intermediaries: the level is at least the one
                              ``required_level_by_grade`` gives for the grade the organisation
                              declares it will handle (``max_data_grade``); below -> fail
                              (not admitted). Buyers: only when they declare important or core
                              data, at least ``min_level_buyer``; otherwise not applicable.
  listing (``snapshot.provider`` and ``snapshot.product``; none -> fail)
    level-recorded            the provider's ``dsmm_level`` is within 0-5.
    level-for-product-grade   the provider's level is at least the level required for the
                              product's grade; a product without a grade fails (the required
                              level cannot be known).
    grade-within-declaration  the product's grade is not above the provider's declared
                              ``max_data_grade`` (general < important < core).
  A level outside 0-5 also fails the level comparison: it cannot be trusted.

Parameters
  required_level_by_grade (dict grade -> level, default {"general": 2, "important": 3,
    "core": 4}): level 2 (planned and tracked) for any organisation handling data on the
    exchange, 3 (well defined) for important data, the level most DSMM guidance pairs with
    important-data processors, 4 for core data. A partial table overrides only the grades
    it names.
  min_level_buyer (int, default 1): the level a buyer must have when it declares it will
    handle important or core data; 1 only asks that it was assessed at all, because the
    grade the buyer actually receives is checked per trade by R3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Rule, RuleContext, Severity, Stage, Text
from marketplace.compliance.snapshots import OrganizationFacts, ProductFacts

_GRADES: Final = ("general", "important", "core")
_GRADE_RANK: Final = {grade: rank for rank, grade in enumerate(_GRADES)}
_MIN_LEVEL: Final = 0
_MAX_LEVEL: Final = 5
DEFAULT_REQUIRED_LEVEL_BY_GRADE: Final = {"general": 2, "important": 3, "core": 4}


def _is_level(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and _MIN_LEVEL <= value <= _MAX_LEVEL


class SecurityMaturityStandard(Rule):
    id: ClassVar[str] = "S10"
    title_zh: ClassVar[str] = "数据安全能力成熟度模型（GB/T 37988-2019）"
    title_en: ClassVar[str] = "GB/T 37988-2019 data security capability maturity model"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 37988-2019 §5.3",
        "DSL Art. 21",
        "DSL Art. 27",
        "DSL Art. 30",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.ADMISSION, Stage.LISTING})
    parameters: ClassVar[dict[str, Any]] = {
        "required_level_by_grade": dict(DEFAULT_REQUIRED_LEVEL_BY_GRADE),
        "min_level_buyer": 1,
    }
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "no-grade": "the product has no grade",
        "unknown-grade": "the product's grade {grade!r} is not general, important or core",
        "no-organisation-in-admission-snapshot": "no organisation in the admission snapshot",
        "no-provider-in-listing-snapshot": "no provider in the listing snapshot: its security maturity is unknown",
        "dsmm-level-recorded": "DSMM level {dsmm_level} is recorded",
        "dsmm-level-outside-model-0": "DSMM level {dsmm_level} is outside the model's 0-5 range",
        "buyer-declares-only-general-data": "the buyer declares only general data: no maturity level is required",
        "dsmm-level-not-valid-level": "DSMM level {dsmm_level} is not a valid level",
        "dsmm-level-meets-level-required": (
            "DSMM level {dsmm_level} meets the level {required} required for {max_data_grade} data"
        ),
        "dsmm-level-below-level-required": (
            "DSMM level {dsmm_level} is below the level {required} required for the {max_data_grade} data "
            "the {kind} declares it will handle"
        ),
        "no-product-in-listing-snapshot": "no product in the listing snapshot",
        "required-maturity-level-cannot-determined": "{product}: the required maturity level cannot be determined",
        "provider-dsmm-level-meets-level": (
            "the provider's DSMM level {dsmm_level} meets the level {required} required for {grade} data"
        ),
        "provider-dsmm-level-below-level": (
            "the provider's DSMM level {dsmm_level} is below the level {required} required for {grade} data"
        ),
        "to-compare-with-provider-declaration": "{product} to compare with the provider's declaration",
        "data-within-provider-declared-maximum": (
            "{grade} data is within the provider's declared maximum ({max_data_grade})"
        ),
        "data-above-highest-grade-provider": (
            "{grade} data is above the highest grade the provider declared it handles ({max_data_grade})"
        ),
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        table = {**DEFAULT_REQUIRED_LEVEL_BY_GRADE, **self.params["required_level_by_grade"]}
        unknown = sorted(set(table) - set(_GRADES))
        if unknown:
            raise ValueError(f"S10 required_level_by_grade names unknown grades {unknown}; known: {list(_GRADES)}")
        bad = {grade: level for grade, level in table.items() if not _is_level(level)}
        if bad:
            raise ValueError(f"S10 required_level_by_grade levels must be integers 0-5, got {bad}")
        buyer_level = self.params["min_level_buyer"]
        if not _is_level(buyer_level):
            raise ValueError(f"S10 min_level_buyer must be an integer 0-5, got {buyer_level!r}")
        self._required: dict[str, int] = table
        self._min_level_buyer: int = buyer_level

    def _no_grade(self, product: ProductFacts) -> list[Text]:
        """Why a product has no grade the levels can be read for (none declared, or one outside the vocabulary),
        as the one message a finding's message names."""
        if product.grade is None:
            return [self.text("no-grade")]
        return [self.text("unknown-grade", grade=product.grade)]

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is Stage.ADMISSION:
            org = ctx.snapshot.organization
            if org is None:
                message = self.text("no-organisation-in-admission-snapshot")
                return [
                    self.failed("level-recorded", message, {"organization": False}),
                    self.failed("level-for-declared-grade", message, {"organization": False}),
                ]
            return [self._recorded(org), self._declared(org)]
        if ctx.stage is Stage.LISTING:
            provider = ctx.snapshot.provider
            product = ctx.snapshot.product
            if provider is None:
                message = self.text("no-provider-in-listing-snapshot")
                return [
                    self.failed("level-recorded", message, {"provider": False}),
                    self.failed("level-for-product-grade", message, {"provider": False}),
                    self.failed("grade-within-declaration", message, {"provider": False}),
                ]
            return [
                self._recorded(provider),
                self._product_level(provider, product),
                self._within_declaration(provider, product),
            ]
        return []

    def _recorded(self, org: OrganizationFacts) -> Finding:
        evidence = {"organization_id": org.id, "kind": org.kind, "dsmm_level": org.dsmm_level}
        if _is_level(org.dsmm_level):
            return self.passed("level-recorded", self.text("dsmm-level-recorded", dsmm_level=org.dsmm_level), evidence)
        return self.failed(
            "level-recorded", self.text("dsmm-level-outside-model-0", dsmm_level=org.dsmm_level), evidence
        )

    def _declared(self, org: OrganizationFacts) -> Finding:
        check = "level-for-declared-grade"
        evidence: dict[str, Any] = {
            "organization_id": org.id,
            "kind": org.kind,
            "dsmm_level": org.dsmm_level,
            "max_data_grade": org.max_data_grade,
        }
        if org.kind == "buyer":
            if org.max_data_grade == "general":
                evidence["required_level"] = None
                return self.not_applicable(check, self.text("buyer-declares-only-general-data"), evidence)
            required = self._min_level_buyer
        else:
            required = self._required[org.max_data_grade]
        evidence["required_level"] = required
        if not _is_level(org.dsmm_level):
            return self.failed(check, self.text("dsmm-level-not-valid-level", dsmm_level=org.dsmm_level), evidence)
        if org.dsmm_level >= required:
            return self.passed(
                check,
                self.text(
                    "dsmm-level-meets-level-required",
                    dsmm_level=org.dsmm_level,
                    required=required,
                    max_data_grade=org.max_data_grade,
                ),
                evidence,
            )
        return self.failed(
            check,
            self.text(
                "dsmm-level-below-level-required",
                dsmm_level=org.dsmm_level,
                required=required,
                max_data_grade=org.max_data_grade,
                kind=org.kind,
            ),
            evidence,
        )

    def _product_level(self, provider: OrganizationFacts, product: ProductFacts | None) -> Finding:
        check = "level-for-product-grade"
        if product is None:
            return self.failed(check, self.text("no-product-in-listing-snapshot"), {"product": False})
        evidence: dict[str, Any] = {
            "organization_id": provider.id,
            "dsmm_level": provider.dsmm_level,
            "product_grade": product.grade,
        }
        grade = product.known_grade
        if grade is None:
            evidence["required_level"] = None
            return self.failed(
                check, self.text("required-maturity-level-cannot-determined", product=self._no_grade(product)), evidence
            )
        required = self._required[grade]
        evidence["required_level"] = required
        if not _is_level(provider.dsmm_level):
            return self.failed(check, self.text("dsmm-level-not-valid-level", dsmm_level=provider.dsmm_level), evidence)
        if provider.dsmm_level >= required:
            return self.passed(
                check,
                self.text(
                    "provider-dsmm-level-meets-level",
                    dsmm_level=provider.dsmm_level,
                    required=required,
                    grade=product.grade,
                ),
                evidence,
            )
        return self.failed(
            check,
            self.text(
                "provider-dsmm-level-below-level",
                dsmm_level=provider.dsmm_level,
                required=required,
                grade=product.grade,
            ),
            evidence,
        )

    def _within_declaration(self, provider: OrganizationFacts, product: ProductFacts | None) -> Finding:
        check = "grade-within-declaration"
        if product is None:
            return self.failed(check, self.text("no-product-in-listing-snapshot"), {"product": False})
        evidence = {
            "organization_id": provider.id,
            "product_grade": product.grade,
            "max_data_grade": provider.max_data_grade,
        }
        grade = product.known_grade
        if grade is None:
            return self.failed(
                check, self.text("to-compare-with-provider-declaration", product=self._no_grade(product)), evidence
            )
        if _GRADE_RANK[grade] <= _GRADE_RANK[provider.max_data_grade]:
            return self.passed(
                check,
                self.text(
                    "data-within-provider-declared-maximum", grade=product.grade, max_data_grade=provider.max_data_grade
                ),
                evidence,
            )
        return self.failed(
            check,
            self.text("data-above-highest-grade-provider", grade=product.grade, max_data_grade=provider.max_data_grade),
            evidence,
        )

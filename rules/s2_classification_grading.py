"""S2 — GB/T 43697-2024 数据分类分级 (data classification and grading).

The rule text is a reconstruction: the official texts of the exchange's "eight rules and ten
standards" were not at hand. The checks rest on GB/T 43697-2024 (classify by industry
domain first, then grade as general / important / core data), DSL Art. 21 (the three-level
protection system) and the PIPL definitions of personal and sensitive personal information
(Arts. 4 and 28), which GB/T 43697 carries into its identification of important data.

Stage: `listing`. A listing snapshot without a product fails every check (fail closed).

Checks:
  - `category`: the product names a category and it is one of the parameter `categories`
    (broad domains, GB/T 43697 §5: classify by the industry or domain the data serves).
  - `grade`: the product names a grade and it is general, important or core (DSL Art. 21,
    GB/T 43697 §6).
  - `personal-info-flag`: a field marked personal requires `contains_personal_info`.
  - `sensitive-info-flag`: a field marked sensitive requires `contains_sensitive_personal_info`.
  - `sensitive-implies-personal`: sensitive PI is PI (PIPL Art. 28): a product flagged as
    holding sensitive PI is also flagged as holding PI, and every field marked sensitive is
    also marked personal.
  - `grade-floor`: the grade is not lower than the PI in the product implies. GB/T 43697
    (Appendix G) lists large-scale sensitive personal information among the data that may be
    important data, so sensitive PI graded below `sensitive_pi_minimum_grade` goes to review: a person
    decides whether the volume makes it important data. Nothing here forces a fail, since
    the snapshot has no record count of data subjects.

Parameters:
  - `categories` (list): accepted categories; default a broad list of domains.
  - `sensitive_pi_minimum_grade` (str, default "important"): the grade below which products
    holding sensitive PI go to review; "general" disables the review.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Rule, RuleContext, Severity, Stage
from marketplace.compliance.snapshots import ProductFacts

GRADES: Final = ("general", "important", "core")
_GRADE_RANK: Final[Mapping[str, int]] = {grade: rank for rank, grade in enumerate(GRADES)}

DEFAULT_CATEGORIES: Final = [
    "transport",
    "meteorology",
    "finance",
    "healthcare",
    "energy",
    "agriculture",
    "commerce",
    "government",
    "telecom",
    "education",
    "manufacturing",
    "geospatial",
    "environment",
    "culture_tourism",
    "other",
]

_CHECKS: Final = (
    "category",
    "grade",
    "personal-info-flag",
    "sensitive-info-flag",
    "sensitive-implies-personal",
    "grade-floor",
)


class ClassificationGradingStandard(Rule):
    id: ClassVar[str] = "S2"
    title_zh: ClassVar[str] = "数据分类分级（GB/T 43697-2024）"
    title_en: ClassVar[str] = "GB/T 43697-2024 data classification and grading"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 43697-2024 §5 (classification)",
        "GB/T 43697-2024 §6 (grading: general, important, core)",
        "GB/T 43697-2024 Appendix B (personal information)",
        "GB/T 43697-2024 Appendix G (identification of important data)",
        "DSL Art. 21",
        "PIPL Art. 4",
        "PIPL Art. 28",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING})
    parameters: ClassVar[Mapping[str, Any]] = {
        "categories": DEFAULT_CATEGORIES,
        "sensitive_pi_minimum_grade": "important",
    }
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "listing-snapshot-no-product-to": "the listing snapshot has no product to classify and grade",
        "product-no-data-category-gb": "the product has no data category (GB/T 43697 classification)",
        "data-category-not-one-exchange": "the data category {category!r} is not one the exchange recognises",
        "product-classified-as": "the product is classified as {category}",
        "product-no-data-grade-general": "the product has no data grade (general, important or core; DSL Art. 21)",
        "data-grade-not-general-important": "the data grade {grade!r} is not general, important or core",
        "product-graded": "the product is graded {grade}",
        "personal-information-flag-agrees-with": "the personal-information flag agrees with the field schema",
        "fields-marked-personal-but-product": (
            "fields {personal_fields} are marked personal but the product is not flagged as containing "
            "personal information"
        ),
        "sensitive-personal-information-flag-agrees": (
            "the sensitive-personal-information flag agrees with the field schema"
        ),
        "fields-marked-sensitive-but-product": (
            "fields {sensitive_fields} are marked sensitive but the product is not flagged as containing "
            "sensitive personal information"
        ),
        "product-flagged-as-holding-sensitive": (
            "the product is flagged as holding sensitive personal information but not personal information, "
            "and fields {sensitive_not_personal} are sensitive but not personal"
        ),
        "product-flagged-as-holding-sensitive-2": (
            "the product is flagged as holding sensitive personal information but not personal information"
        ),
        "fields-marked-sensitive-but-not": "fields {sensitive_not_personal} are marked sensitive but not personal",
        "sensitive-personal-information-also-flagged": (
            "sensitive personal information is also flagged as personal information"
        ),
        "product-no-valid-grade-to": "the product has no valid grade to compare (see the grade check)",
        "product-holds-sensitive-personal-information": (
            "the product holds sensitive personal information but is graded {grade}; GB/T 43697 treats "
            "large-scale sensitive personal information as possibly important data, an administrator "
            "decides whether it must be graded at least {implied}"
        ),
        "grade-not-lower-than-field": "the grade {grade} is not lower than the field schema implies",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._categories = frozenset(str(c) for c in self.params["categories"])
        self._categories_sorted = sorted(self._categories)
        minimum = self.params["sensitive_pi_minimum_grade"]
        if minimum not in _GRADE_RANK:
            raise ValueError(f"S2 parameter sensitive_pi_minimum_grade must be one of {list(GRADES)}, got {minimum!r}")
        self._sensitive_minimum: str = minimum

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not Stage.LISTING:
            return []
        product = ctx.snapshot.product
        if product is None:
            return [
                self.failed(check, self.text("listing-snapshot-no-product-to"), {"product": None}) for check in _CHECKS
            ]
        return [
            self._category(product),
            self._grade(product),
            *self._pi_flags(product),
            self._grade_floor(product),
        ]

    def _category(self, product: ProductFacts) -> Finding:
        category = product.category
        if category is None or not category.strip():
            return self.failed(
                "category",
                self.text("product-no-data-category-gb"),
                {"category": category, "allowed": list(self._categories_sorted)},
            )
        if category not in self._categories:
            return self.failed(
                "category",
                self.text("data-category-not-one-exchange", category=category),
                {"category": category, "allowed": list(self._categories_sorted)},
            )
        return self.passed("category", self.text("product-classified-as", category=category), {"category": category})

    def _grade(self, product: ProductFacts) -> Finding:
        grade = product.grade
        if grade is None:
            return self.failed(
                "grade",
                self.text("product-no-data-grade-general"),
                {"grade": None, "allowed": list(GRADES)},
            )
        if grade not in _GRADE_RANK:
            return self.failed(
                "grade",
                self.text("data-grade-not-general-important", grade=grade),
                {"grade": grade, "allowed": list(GRADES)},
            )
        return self.passed("grade", self.text("product-graded", grade=grade), {"grade": grade})

    def _pi_flags(self, product: ProductFacts) -> tuple[Finding, Finding, Finding]:
        personal_fields = [f.name for f in product.fields if f.personal]
        sensitive_fields = [f.name for f in product.fields if f.sensitive]
        sensitive_not_personal = [f.name for f in product.fields if f.sensitive and not f.personal]
        has_pi = product.contains_personal_info
        has_spi = product.contains_sensitive_personal_info

        evidence: dict[str, Any] = {"contains_personal_info": has_pi, "personal_fields": personal_fields}
        personal = self.check(
            "personal-info-flag",
            has_pi or not personal_fields,
            self.text("personal-information-flag-agrees-with"),
            self.text("fields-marked-personal-but-product", personal_fields=personal_fields),
            evidence,
        )
        evidence = {"contains_sensitive_personal_info": has_spi, "sensitive_fields": sensitive_fields}
        sensitive = self.check(
            "sensitive-info-flag",
            has_spi or not sensitive_fields,
            self.text("sensitive-personal-information-flag-agrees"),
            self.text("fields-marked-sensitive-but-product", sensitive_fields=sensitive_fields),
            evidence,
        )
        product_inconsistent = has_spi and not has_pi
        evidence = {
            "contains_personal_info": has_pi,
            "contains_sensitive_personal_info": has_spi,
            "sensitive_fields_not_personal": sensitive_not_personal,
        }
        if product_inconsistent and sensitive_not_personal:
            failed = self.text("product-flagged-as-holding-sensitive", sensitive_not_personal=sensitive_not_personal)
        elif product_inconsistent:
            failed = self.text("product-flagged-as-holding-sensitive-2")
        else:
            failed = self.text("fields-marked-sensitive-but-not", sensitive_not_personal=sensitive_not_personal)
        implies = self.check(
            "sensitive-implies-personal",
            not product_inconsistent and not sensitive_not_personal,
            self.text("sensitive-personal-information-also-flagged"),
            failed,
            evidence,
        )
        return personal, sensitive, implies

    def _grade_floor(self, product: ProductFacts) -> Finding:
        grade = product.grade
        sensitive_fields = [f.name for f in product.fields if f.sensitive]
        holds_spi = product.contains_sensitive_personal_info or bool(sensitive_fields)
        implied = self._sensitive_minimum if holds_spi else "general"
        evidence: dict[str, Any] = {
            "grade": grade,
            "implied_minimum": implied,
            "contains_sensitive_personal_info": product.contains_sensitive_personal_info,
            "sensitive_fields": sensitive_fields,
        }
        if grade is None or grade not in _GRADE_RANK:
            return self.not_applicable("grade-floor", self.text("product-no-valid-grade-to"), evidence)
        if _GRADE_RANK[grade] < _GRADE_RANK[implied]:
            return self.review(
                "grade-floor",
                self.text("product-holds-sensitive-personal-information", grade=grade, implied=implied),
                evidence,
            )
        return self.passed("grade-floor", self.text("grade-not-lower-than-field", grade=grade), evidence)

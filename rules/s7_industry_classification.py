"""S7 — GB/T 4754-2017 国民经济行业分类 (industrial classification for national economic activities).

The rule text is a reconstruction: the official Guizhou rule texts were not at hand. What it
rests on is the standard's code structure (section letter A-T, 2-digit division, 3-digit
group, 4-digit class) and its published code table, shipped as data with the platform
(``marketplace/kit/data/gbt4754_2017.csv``, read through ``marketplace.kit.codelists``).
A product is filed under the industry its data describes, so buyers, the registration
record and statistics can find it by sector.

Checks (listing stage)
  industry-code   ``product.industry_code`` is present and is a code of GB/T 4754-2017 at
                  any level. Input is normalised first (surrounding blanks, lower case, and a
                  class written with its own section letter in front such as ``G5431``).
                  Missing product, missing code or unknown code -> fail. When
                  ``require_class_level`` is on, a known code coarser than a 4-digit class
                  (section, division or group) -> review: a person decides whether the
                  coarser filing is acceptable or asks the provider for the class.
                  Evidence: the declared value, the normalised code, its level, its Chinese
                  name and its section.

Parameters
  require_class_level (bool, default false): demand the 4-digit class. Off by default
    because the standard itself allows classifying at any level and many datasets span
    several classes of one group or division.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marketplace.compliance.contract import Finding, Rule, RuleContext, Severity, Stage
from marketplace.kit import codelists


class IndustryClassificationStandard(Rule):
    id: ClassVar[str] = "S7"
    title_zh: ClassVar[str] = "国民经济行业分类（GB/T 4754-2017）"
    title_en: ClassVar[str] = "GB/T 4754-2017 industrial classification"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = ("GB/T 4754-2017",)
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING})
    parameters: ClassVar[dict[str, Any]] = {"require_class_level": False}
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "no-product-in-listing-snapshot": "no product in the listing snapshot: its industry cannot be checked",
        "product-no-gb-t-4754": "the product has no GB/T 4754-2017 industry code",
        "not-gb-t-4754-2017": "{declared!r} is not a GB/T 4754-2017 industry code",
        "industry-code-coarser-than-4": (
            "industry code {code} is a {level}, coarser than the 4-digit class the rulebook requires"
        ),
        "industry-code-valid": "industry code {code} ({level}) is valid",
    }

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not Stage.LISTING:
            return []
        return [self._industry_code(ctx)]

    def _industry_code(self, ctx: RuleContext) -> Finding:
        product = ctx.snapshot.product
        if product is None:
            return self.failed(
                "industry-code",
                self.text("no-product-in-listing-snapshot"),
                {"declared": None},
            )
        declared = product.industry_code
        if declared is None or not declared.strip():
            return self.failed("industry-code", self.text("product-no-gb-t-4754"), {"declared": declared})
        code = codelists.normalize_industry_code(declared)
        if code is None or not codelists.is_industry_code(code):
            return self.failed(
                "industry-code",
                self.text("not-gb-t-4754-2017", declared=declared),
                {"declared": declared, "industry_code": None},
            )
        entry = codelists.industries()[code]
        evidence = {
            "declared": declared,
            "industry_code": code,
            "level": entry.level,
            "name_zh": entry.name_zh,
            "section": entry.section,
            "require_class_level": bool(self.params["require_class_level"]),
        }
        if entry.level != "class" and self.params["require_class_level"]:
            return self.review(
                "industry-code",
                self.text("industry-code-coarser-than-4", code=code, level=entry.level),
                evidence,
            )
        return self.passed("industry-code", self.text("industry-code-valid", code=code, level=entry.level), evidence)

"""S5 — GB/T 36344-2018 数据质量评价指标 (data quality evaluation indicators).

The rule text is a reconstruction: the official texts of the exchange's "eight rules and ten
standards" were not at hand. The checks rest on GB/T 36344-2018 (the indicator framework
§3, described one by one in §5), which names six indicators — normativity (规范性),
completeness (完整性), accuracy (准确性), consistency (一致性), timeliness (时效性) and
accessibility (可访问性) — here declared by the provider as scores in [0, 1] — and on the
exchange's duty to describe a product truthfully (《数据二十条》 on trustworthy circulation;
DSL Art. 33 on verifying what is traded).

Stage: `listing`. A listing snapshot without a product fails every check (fail closed).

Checks:
  - `indicators-declared`: the six indicators are declared and each is a number in [0, 1].
  - `completeness-measured`: completeness is re-measured on the sample rows as the share of
    cells that are neither null nor empty after stripping blanks, over all cells (a row
    shorter than the column list counts its missing cells as empty). Below `min_completeness`
    -> fail. No sample rows -> fail: a claim that cannot be measured is not accepted (fail
    closed; deliberately no parameter).
  - `completeness-declared`: the declared completeness exceeds the measured one by more than
    `completeness_tolerance` -> review (the sample may not be representative, a person
    decides). `not_applicable` when either value is missing (the checks above fail then).
  - `indicator-floor`: any declared indicator below `min_indicator` -> review.
    `not_applicable` without declared indicators.

Parameters (shares in [0, 1]):
  - `min_completeness` (default 0.8): the least measured completeness accepted; a sample
    with more than one empty cell in five is not a product a buyer can use as described.
  - `completeness_tolerance` (default 0.05): how far the declared completeness may exceed the
    measured one; a sample of a few rows measures coarsely (one cell of twenty is 0.05).
  - `min_indicator` (default 0.6): declared scores below it go to review.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Rule, RuleContext, Severity, Stage
from marketplace.compliance.snapshots import ProductFacts, QualityIndicators, SampleFacts

INDICATORS: Final = ("normativity", "completeness", "accuracy", "consistency", "timeliness", "accessibility")
_CHECKS: Final = ("indicators-declared", "completeness-measured", "completeness-declared", "indicator-floor")
_DIGITS: Final = 4


def _number(value: object) -> float | None:
    """The indicator as a finite float, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def measure_completeness(sample: SampleFacts) -> tuple[float, int, int, int]:
    """Measured completeness, rows, cells and filled cells of the sample's rows."""
    width = len(sample.columns)
    cells = 0
    filled = 0
    for row in sample.rows:
        cells += max(width, len(row))
        for cell in row:
            if cell is not None and cell.strip():
                filled += 1
    return (filled / cells if cells else 0.0), len(sample.rows), cells, filled


class DataQualityStandard(Rule):
    id: ClassVar[str] = "S5"
    title_zh: ClassVar[str] = "数据质量评价指标（GB/T 36344-2018）"
    title_en: ClassVar[str] = "GB/T 36344-2018 data quality evaluation indicators"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 36344-2018 §3 (indicator framework)",
        "GB/T 36344-2018 §5 (indicator description)",
        "GB/T 36344-2018 §5.2 (completeness)",
        "DSL Art. 33",
        "《数据二十条》",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING})
    parameters: ClassVar[Mapping[str, Any]] = {
        "min_completeness": 0.8,
        "completeness_tolerance": 0.05,
        "min_indicator": 0.6,
    }
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "listing-snapshot-no-product-whose": "the listing snapshot has no product whose quality could be checked",
        "product-declares-no-quality-indicators": (
            "the product declares no quality indicators (GB/T 36344: normativity, completeness, accuracy, "
            "consistency, timeliness, accessibility)"
        ),
        "quality-indicators-not-finite-numbers": "quality indicators {invalid} are not finite numbers",
        "six-quality-indicators-declared-each": "the six quality indicators are declared, each in [0, 1]",
        "quality-indicators-outside-0-1": "quality indicators {out_of_range} are outside [0, 1]",
        "product-no-sample-rows-completeness": (
            "the product has no sample rows, so its completeness cannot be measured"
        ),
        "sample-rows-no-cells-completeness": "the sample rows have no cells, so completeness cannot be measured",
        "sample-complete-at-least-floor": (
            "the sample is {measured:.1%} complete, at least the {min_completeness:.0%} floor"
        ),
        "sample-only-complete-below-floor": (
            "the sample is only {measured:.1%} complete, below the {min_completeness:.0%} floor"
        ),
        "declared-and-measured-completeness-not": (
            "declared and measured completeness are not both available (see the checks above)"
        ),
        "declared-completeness-exceeds-measured-on": (
            "the declared completeness {claimed:.1%} exceeds the {measured:.1%} measured on the sample by "
            "more than {tolerance:.1%}; an administrator decides whether the claim stands"
        ),
        "declared-completeness-agrees-with-one": (
            "the declared completeness agrees with the one measured on the sample"
        ),
        "product-declares-no-quality-indicators-2": (
            "the product declares no quality indicators (see indicators-declared)"
        ),
        "declared-quality-indicators-below-administrator": (
            "declared quality indicators {below} are below {min_indicator}; an administrator decides "
            "whether the product is fit to list"
        ),
        "every-declared-quality-indicator-at": "every declared quality indicator is at least {min_indicator}",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._min_completeness = float(self.params["min_completeness"])
        self._tolerance = float(self.params["completeness_tolerance"])
        self._min_indicator = float(self.params["min_indicator"])

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not Stage.LISTING:
            return []
        product = ctx.snapshot.product
        if product is None:
            return [
                self.failed(check, self.text("listing-snapshot-no-product-whose"), {"product": None})
                for check in _CHECKS
            ]
        declared = self._declared(product.quality)
        measured_finding, measured = self._measured(product)
        return [
            self._indicators(product.quality, declared),
            measured_finding,
            self._declared_vs_measured(declared, measured),
            self._floor(product.quality, declared),
        ]

    @staticmethod
    def _declared(quality: QualityIndicators | None) -> dict[str, float | None]:
        if quality is None:
            return {}
        return {name: _number(getattr(quality, name, None)) for name in INDICATORS}

    def _indicators(self, quality: QualityIndicators | None, declared: dict[str, float | None]) -> Finding:
        if quality is None:
            return self.failed(
                "indicators-declared",
                self.text("product-declares-no-quality-indicators"),
                {"declared": None, "missing": list(INDICATORS)},
            )
        invalid = [name for name, value in declared.items() if value is None]
        out_of_range = {
            name: value for name, value in declared.items() if value is not None and not 0.0 <= value <= 1.0
        }
        evidence: dict[str, Any] = {
            "declared": {name: value for name, value in declared.items() if value is not None},
            "out_of_range": out_of_range,
        }
        if invalid:
            evidence["not_numbers"] = invalid
            return self.failed(
                "indicators-declared", self.text("quality-indicators-not-finite-numbers", invalid=invalid), evidence
            )
        return self.check(
            "indicators-declared",
            not out_of_range,
            self.text("six-quality-indicators-declared-each"),
            self.text("quality-indicators-outside-0-1", out_of_range=sorted(out_of_range)),
            evidence,
        )

    def _measured(self, product: ProductFacts) -> tuple[Finding, float | None]:
        sample = product.sample
        if sample is None or not sample.rows:
            finding = self.failed(
                "completeness-measured",
                self.text("product-no-sample-rows-completeness"),
                {"sample": sample is not None, "rows": 0, "cells": 0},
            )
            return finding, None
        measured, rows, cells, filled = measure_completeness(sample)
        evidence = {
            "measured": round(measured, _DIGITS),
            "rows": rows,
            "cells": cells,
            "filled_cells": filled,
            "min_completeness": self._min_completeness,
        }
        if cells == 0:
            return self.failed("completeness-measured", self.text("sample-rows-no-cells-completeness"), evidence), None
        finding = self.check(
            "completeness-measured",
            measured >= self._min_completeness,
            self.text("sample-complete-at-least-floor", measured=measured, min_completeness=self._min_completeness),
            self.text("sample-only-complete-below-floor", measured=measured, min_completeness=self._min_completeness),
            evidence,
        )
        return finding, measured

    def _declared_vs_measured(self, declared: dict[str, float | None], measured: float | None) -> Finding:
        claimed = declared.get("completeness")
        evidence: dict[str, Any] = {
            "declared": claimed,
            "measured": None if measured is None else round(measured, _DIGITS),
            "completeness_tolerance": self._tolerance,
        }
        if claimed is None or measured is None:
            return self.not_applicable(
                "completeness-declared",
                self.text("declared-and-measured-completeness-not"),
                evidence,
            )
        excess = claimed - measured
        evidence["excess"] = round(excess, _DIGITS)
        if excess > self._tolerance + 1e-9:
            return self.review(
                "completeness-declared",
                self.text(
                    "declared-completeness-exceeds-measured-on",
                    claimed=claimed,
                    measured=measured,
                    tolerance=self._tolerance,
                ),
                evidence,
            )
        return self.passed("completeness-declared", self.text("declared-completeness-agrees-with-one"), evidence)

    def _floor(self, quality: QualityIndicators | None, declared: dict[str, float | None]) -> Finding:
        if quality is None:
            return self.not_applicable(
                "indicator-floor",
                self.text("product-declares-no-quality-indicators-2"),
                {"min_indicator": self._min_indicator},
            )
        below = {name: value for name, value in declared.items() if value is not None and value < self._min_indicator}
        evidence = {"min_indicator": self._min_indicator, "below_floor": below}
        if below:
            return self.review(
                "indicator-floor",
                self.text(
                    "declared-quality-indicators-below-administrator",
                    below=sorted(below),
                    min_indicator=self._min_indicator,
                ),
                evidence,
            )
        return self.passed(
            "indicator-floor",
            self.text("every-declared-quality-indicator-at", min_indicator=self._min_indicator),
            evidence,
        )

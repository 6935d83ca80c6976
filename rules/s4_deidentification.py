"""S4 — GB/T 37964-2019 个人信息去标识化 (personal information de-identification).

The rule text is a reconstruction: the official texts of the exchange's "eight rules and ten
standards" were not at hand. The checks rest on GB/T 37964-2019 (direct identifiers §3.7, the
de-identification process §5, techniques in Appendix A, models in Appendix B), GB/T 35273-2020
§6.2, PIPL Art. 73 (de-identification) and, for the identifiers the scanner knows, GB 11643
(resident identity number check digit) and ISO/IEC 7812 (Luhn check on bank card numbers).

Stages: `listing` and `delivery` (the product may have changed since it was listed, so the
same checks run again on the snapshot taken at delivery). A snapshot without a product fails
every check (fail closed).

Checks:
  - `technique-declared`: personal information not sold under consent declares at least one
    de-identification technique from the parameter `techniques` (compared case-insensitively,
    "-" and " " read as "_"). The product holds PI when it is flagged so or any field is
    marked personal, sensitive or direct identifier. `not_applicable` when the product holds
    no PI or is sold under consent.
  - `direct-identifier-fields`: no field is marked `direct_identifier` unless the product is
    sold under the data subjects' consent (`not_applicable` then). This applies whatever the
    PI flags say: a direct identifier is personal information by definition.
  - `sample-scan`: every cell of the sample rows is scanned with
    `kit.identifiers.find_direct_identifiers` (resident ID numbers with a valid GB 11643 check
    character, mainland mobile numbers, e-mail addresses, Luhn-valid bank card numbers). Any
    hit fails, with counts per kind, the columns where found and at most 5 masked examples;
    raw values never leave the scanner. The scan runs for every product, PI-flagged or not,
    sold under consent or not: a sample is shown to prospective buyers, who have no consent
    to see anyone's identifiers, and a product wrongly flagged as free of PI is exactly what
    the scan is for. A PI product without sample rows cannot be scanned -> fail (or review,
    see below); a product without PI and without sample -> `not_applicable`.

Parameters:
  - `techniques` (list): recognised techniques, default the GB/T 37964 Appendix A/B families:
    suppression, pseudonymisation, generalisation, randomisation, k-anonymity,
    differential_privacy, aggregation, encryption_with_key_separation.
  - `missing_sample_review` (bool, default false): true sends a PI product without sample rows
    to review instead of failing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage
from marketplace.compliance.snapshots import ProductFacts
from marketplace.kit.identifiers import find_direct_identifiers

DEFAULT_TECHNIQUES: Final = [
    "suppression",
    "pseudonymisation",
    "generalisation",
    "randomisation",
    "k-anonymity",
    "differential_privacy",
    "aggregation",
    "encryption_with_key_separation",
]
MAX_EXAMPLES: Final = 5
_CHECKS: Final = ("technique-declared", "direct-identifier-fields", "sample-scan")


def normalize_technique(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _holds_pi(product: ProductFacts) -> bool:
    if product.contains_personal_info or product.contains_sensitive_personal_info:
        return True
    return any(f.personal or f.sensitive or f.direct_identifier for f in product.fields)


class DeidentificationStandard(Rule):
    id: ClassVar[str] = "S4"
    title_zh: ClassVar[str] = "个人信息去标识化（GB/T 37964-2019）"
    title_en: ClassVar[str] = "GB/T 37964-2019 personal information de-identification"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 37964-2019 §3.7 (direct identifier)",
        "GB/T 37964-2019 §5 (de-identification process)",
        "GB/T 37964-2019 Appendix A (de-identification techniques)",
        "GB/T 37964-2019 Appendix B (de-identification models)",
        "GB/T 35273-2020 §6.2 (de-identification)",
        "GB 11643-1999 (citizen identity number)",
        "PIPL Art. 51",
        "PIPL Art. 73",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING, Stage.DELIVERY})
    parameters: ClassVar[Mapping[str, Any]] = {
        "techniques": DEFAULT_TECHNIQUES,
        "missing_sample_review": False,
    }
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "snapshot-no-product-to-check": "the {value} snapshot has no product to check for de-identification",
        "product-holds-no-personal-information": "the product holds no personal information",
        "personal-information-sold-under-data": (
            "the personal information is sold under the data subjects' consent, not de-identified"
        ),
        "personal-information-de-identified-with": (
            "the personal information is de-identified with a recognised technique"
        ),
        "none-declared-de-identification-techniques": (
            "none of the declared de-identification techniques {declared} is one the exchange recognises ({techniques})"
        ),
        "product-holds-personal-information-not": (
            "the product holds personal information not sold under consent but declares no de-identification"
        ),
        "product-sold-under-data-subjects": (
            "the product is sold under the data subjects' consent; direct identifiers may be delivered"
        ),
        "no-field-direct-identifier": "no field is a direct identifier",
        "fields-direct-identifiers-but-product": (
            "fields {marked} are direct identifiers, but the product is not sold under consent"
        ),
        "product-holds-no-personal-information-2": (
            "the product holds no personal information and has no sample rows to scan"
        ),
        "product-holds-personal-information-but": (
            "the product holds personal information but has no sample rows to scan for direct identifiers"
        ),
        "sample-contains-direct-identifiers-in": (
            "the sample contains direct identifiers ({kinds}) in columns {columns}"
        ),
        "no-direct-identifier-found-in": "no direct identifier was found in the sample",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._techniques = frozenset(normalize_technique(str(t)) for t in self.params["techniques"])
        self._missing_sample_outcome = Outcome.REVIEW if self.params["missing_sample_review"] else Outcome.FAIL

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is not Stage.LISTING and ctx.stage is not Stage.DELIVERY:
            return []
        product = ctx.snapshot.product
        if product is None:
            message = self.text("snapshot-no-product-to-check", value=ctx.stage.value)
            return [self.failed(check, message, {"product": None}) for check in _CHECKS]
        holds_pi = _holds_pi(product)
        return [
            self._technique(product, holds_pi),
            self._identifier_fields(product),
            self._sample_scan(product, holds_pi),
        ]

    def _technique(self, product: ProductFacts, holds_pi: bool) -> Finding:
        declared = list(product.deidentification_techniques)
        if not holds_pi:
            return self.not_applicable(
                "technique-declared", self.text("product-holds-no-personal-information"), {"declared": declared}
            )
        if product.sold_under_consent:
            return self.not_applicable(
                "technique-declared",
                self.text("personal-information-sold-under-data"),
                {"declared": declared, "sold_under_consent": True},
            )
        recognised = [t for t in declared if normalize_technique(t) in self._techniques]
        unrecognised = [t for t in declared if normalize_technique(t) not in self._techniques]
        evidence = {"declared": declared, "recognised": recognised, "unrecognised": unrecognised}
        if recognised:
            return self.passed("technique-declared", self.text("personal-information-de-identified-with"), evidence)
        if declared:
            message = self.text(
                "none-declared-de-identification-techniques", declared=declared, techniques=sorted(self._techniques)
            )
        else:
            message = self.text("product-holds-personal-information-not")
        return self.failed("technique-declared", message, evidence)

    def _identifier_fields(self, product: ProductFacts) -> Finding:
        marked = [f.name for f in product.fields if f.direct_identifier]
        evidence = {"direct_identifier_fields": marked, "sold_under_consent": product.sold_under_consent}
        if product.sold_under_consent:
            return self.not_applicable(
                "direct-identifier-fields",
                self.text("product-sold-under-data-subjects"),
                evidence,
            )
        return self.check(
            "direct-identifier-fields",
            not marked,
            self.text("no-field-direct-identifier"),
            self.text("fields-direct-identifiers-but-product", marked=marked),
            evidence,
        )

    def _sample_scan(self, product: ProductFacts, holds_pi: bool) -> Finding:
        sample = product.sample
        if sample is None or not sample.rows:
            evidence: dict[str, Any] = {
                "sample": sample is not None,
                "rows_scanned": 0,
                "contains_personal_info": holds_pi,
            }
            if not holds_pi:
                return self.not_applicable(
                    "sample-scan", self.text("product-holds-no-personal-information-2"), evidence
                )
            return self.finding(
                "sample-scan",
                self._missing_sample_outcome,
                self.text("product-holds-personal-information-but"),
                evidence,
            )
        counts, columns, examples, cells = _scan(sample.rows, sample.columns)
        evidence = {
            "rows_scanned": len(sample.rows),
            "cells_scanned": cells,
            "hits": sum(counts.values()),
            "counts": counts,
            "columns": columns,
            "examples": examples,
        }
        if counts:
            kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items())
            return self.failed(
                "sample-scan",
                self.text("sample-contains-direct-identifiers-in", kinds=kinds, columns=columns),
                evidence,
            )
        return self.passed("sample-scan", self.text("no-direct-identifier-found-in"), evidence)


def _scan(
    rows: Iterable[tuple[str | None, ...]], column_names: tuple[str, ...]
) -> tuple[dict[str, int], list[str], list[dict[str, Any]], int]:
    """Counts per kind, columns with hits (in column order), masked examples, cells scanned."""
    counts: dict[str, int] = {}
    hit_columns: set[int] = set()
    examples: list[dict[str, Any]] = []
    cells = 0
    for row_number, row in enumerate(rows, start=1):
        for index, cell in enumerate(row):
            if cell is None or not cell:
                continue
            cells += 1
            hits = find_direct_identifiers(cell)
            if not hits:
                continue
            hit_columns.add(index)
            for hit in hits:
                counts[hit.kind] = counts.get(hit.kind, 0) + 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(
                        {
                            "kind": hit.kind,
                            "column": _column_name(column_names, index),
                            "row": row_number,
                            "value_masked": hit.value_masked,
                        }
                    )
    columns = [_column_name(column_names, index) for index in sorted(hit_columns)]
    return dict(sorted(counts.items())), columns, examples, cells


def _column_name(names: tuple[str, ...], index: int) -> str:
    return names[index] if index < len(names) else f"#{index + 1}"

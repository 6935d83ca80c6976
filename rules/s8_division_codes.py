"""S8 — GB/T 2260 中华人民共和国行政区划代码 (administrative division codes).

The rule text is a reconstruction: the official Guizhou rule texts were not at hand. What it
rests on is the code table of GB/T 2260-2007 (6-digit province, prefecture and county
codes, kept current by the Ministry of Civil Affairs) and ISO 3166-1 alpha-2 for places
outside it, both shipped as data and read through ``marketplace.kit.codelists``. Lookups
are exact: a code is known only if it is in the list. Where an organisation sits decides
whether a trade leaves the mainland (DSL Art. 31, PIPL Art. 38, the outbound data transfer
assessment measures), so an unknown jurisdiction is never guessed.

Checks
  listing
    region-coverage        ``product.regions`` is non-empty and every entry is a known
                           GB/T 2260 code; unknown codes -> fail, listed in the evidence.
                           A known code at a level outside ``region_levels`` -> review.
    provider-jurisdiction  the provider's jurisdiction is a known GB/T 2260 code or ISO
                           3166-1 alpha-2 code; evidence says whether it is domestic or foreign.
  trade
    buyer-jurisdiction     the buyer's jurisdiction is a known GB/T 2260 code (domestic) or
                           ISO 3166-1 alpha-2 code (foreign); unknown -> fail. The evidence
                           carries ``scope`` (``domestic`` or ``foreign``, per
                           ``codelists.jurisdiction_scope``: Hong Kong, Macao and Taiwan count
                           as outside the mainland) for the cross-border checks of other rules.
  A missing product, provider or buyer fails the check that needs it (fail closed).

Parameters
  region_levels (list of str, default ["province", "prefecture", "county"]): the GB/T 2260
    levels accepted as product coverage without review. All three by default, because a
    product may cover a whole province or a single county; an exchange that wants coverage
    stated at prefecture level or finer drops "province".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage, make_finding
from marketplace.compliance.snapshots import OrganizationFacts
from marketplace.kit import codelists

_LEVELS: Final = ("province", "prefecture", "county")

PASS = Outcome.PASS
FAIL = Outcome.FAIL
LISTING = Stage.LISTING
TRADE = Stage.TRADE


def _jurisdiction_name(code: str) -> str | None:
    return codelists.division_name(code) or codelists.country_name(code)


class DivisionCodesStandard(Rule):
    id: ClassVar[str] = "S8"
    title_zh: ClassVar[str] = "中华人民共和国行政区划代码（GB/T 2260）"
    title_en: ClassVar[str] = "GB/T 2260 administrative division codes"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = (
        "GB/T 2260-2007",
        "ISO 3166-1",
        "DSL Art. 31",
        "PIPL Art. 38",
    )
    stages: ClassVar[frozenset[Stage]] = frozenset({Stage.LISTING, Stage.TRADE})
    parameters: ClassVar[dict[str, Any]] = {"region_levels": list(_LEVELS)}
    default_severity: ClassVar[Severity] = Severity.BLOCK

    messages: ClassVar[dict[str, str]] = {
        "no-product-in-listing-snapshot": "no product in the listing snapshot: its regions cannot be checked",
        "product-declares-no-region-coverage": "the product declares no region coverage (GB/T 2260 codes)",
        "product-regions-not-gb-t": "{unknown} of the product's regions are not GB/T 2260 codes: {unknown2}",
        "regions-at-level-rulebook-does": (
            "regions at a level the rulebook does not accept without review: {other_level}"
        ),
        "all-regions-known-gb-t": "all {regions} regions are known GB/T 2260 codes",
        "no-in-snapshot-jurisdiction-unknown": "no {role} in the snapshot: its jurisdiction is unknown",
        "jurisdiction-neither-gb-t-2260": (
            "the {role}'s jurisdiction {jurisdiction!r} is neither a GB/T 2260 nor an ISO 3166-1 alpha-2 code"
        ),
        "jurisdiction-known": "the {role}'s jurisdiction {jurisdiction} is known ({scope})",
    }

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        levels = self.params["region_levels"]
        unknown = [level for level in levels if level not in _LEVELS]
        if unknown:
            raise ValueError(f"S8 region_levels has unknown levels {unknown}; known: {list(_LEVELS)}")
        self._region_levels: frozenset[str] = frozenset(levels)
        self._c_provider_jurisdiction = f"{self.id}.provider-jurisdiction"
        self._c_buyer_jurisdiction = f"{self.id}.buyer-jurisdiction"

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        if ctx.stage is LISTING:
            return [
                self._regions(ctx),
                self._jurisdiction(self._c_provider_jurisdiction, "provider", ctx.snapshot.provider),
            ]
        if ctx.stage is TRADE:
            return [self._jurisdiction(self._c_buyer_jurisdiction, "buyer", ctx.snapshot.buyer)]
        return []

    def _regions(self, ctx: RuleContext) -> Finding:
        product = ctx.snapshot.product
        if product is None:
            return self.failed(
                "region-coverage",
                self.text("no-product-in-listing-snapshot"),
                {"regions": [], "unknown": []},
            )
        regions = list(product.regions)
        if not regions:
            return self.failed(
                "region-coverage",
                self.text("product-declares-no-region-coverage"),
                {"regions": [], "unknown": []},
            )
        divisions = codelists.divisions()
        unknown: list[str] = []
        other_level: list[str] = []
        names: dict[str, str] = {}
        for code in regions:
            entry = divisions.get(code)
            if entry is None:
                if code not in unknown:
                    unknown.append(code)
                continue
            names[code] = entry.name_zh
            if entry.level not in self._region_levels and code not in other_level:
                other_level.append(code)
        evidence: dict[str, Any] = {
            "regions": regions,
            "unknown": unknown,
            "names": names,
            "other_level": other_level,
            "region_levels": sorted(self._region_levels),
        }
        if unknown:
            return self.failed(
                "region-coverage",
                self.text("product-regions-not-gb-t", unknown=len(unknown), unknown2=", ".join(unknown)),
                evidence,
            )
        if other_level:
            return self.review(
                "region-coverage",
                self.text("regions-at-level-rulebook-does", other_level=", ".join(other_level)),
                evidence,
            )
        return self.passed("region-coverage", self.text("all-regions-known-gb-t", regions=len(regions)), evidence)

    def _jurisdiction(self, code: str, role: str, org: OrganizationFacts | None) -> Finding:
        if org is None:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("no-in-snapshot-jurisdiction-unknown", role=role),
                {"role": role, "jurisdiction": None, "scope": None},
                self.basis,
            )
        jurisdiction = org.jurisdiction
        scope = codelists.jurisdiction_scope(jurisdiction)
        if scope is None:
            return make_finding(
                self.id,
                code,
                FAIL,
                self.text("jurisdiction-neither-gb-t-2260", role=role, jurisdiction=jurisdiction),
                {"role": role, "organization_id": org.id, "jurisdiction": jurisdiction, "scope": None},
                self.basis,
            )
        return make_finding(
            self.id,
            code,
            PASS,
            self.text("jurisdiction-known", role=role, jurisdiction=jurisdiction, scope=scope),
            {
                "role": role,
                "organization_id": org.id,
                "jurisdiction": jurisdiction,
                "scope": scope,
                "name": _jurisdiction_name(jurisdiction),
            },
            self.basis,
        )

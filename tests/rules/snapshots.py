"""Realistic snapshots for rule tests: a Guiyang traffic-data provider, a Zunyi logistics buyer,
a general-grade de-identified traffic product, its one-time plan and a clean trade.

Tests change one fact with `replace(...)` and look at what the rule says."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from marketplace.compliance.contract import Finding, RuleContext, Stage
from marketplace.compliance.snapshots import (
    Assessment,
    AuthorisationLink,
    CostDeclaration,
    DeliveryFacts,
    FieldSpec,
    LicenceTerms,
    OrganizationFacts,
    PlanFacts,
    ProductFacts,
    Provenance,
    ProvenanceActivity,
    QualityIndicators,
    SampleFacts,
    SettlementFacts,
    Snapshot,
    TradeFacts,
    Valuation,
)
from marketplace.kit.i18n import Language, localize

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
M = TypeVar("M", bound=BaseModel)


def replace(model: M, **changes: Any) -> M:
    """A copy with some facts changed, validated like a fresh snapshot."""
    return type(model).model_validate({**model.model_dump(), **changes})


PROVIDER = OrganizationFacts(
    id="org-provider",
    name="贵阳交通数据科技有限公司",
    kind="provider",
    uscc="91520100MA6E1T0A0X",  # check character fixed below
    jurisdiction="520100",
    status="admitted",
    dsmm_level=3,
    max_data_grade="important",
    security_certifications=("ISO/IEC 27001",),
    trades_in_window=120,
    complaints_in_window=1,
    disputes_in_window=1,
)
BUYER = OrganizationFacts(
    id="org-buyer",
    name="遵义智慧物流有限公司",
    kind="buyer",
    uscc="91520300MA6J3L0C2X",
    jurisdiction="520300",
    status="admitted",
    dsmm_level=2,
)
INTERMEDIARY = OrganizationFacts(
    id="org-broker",
    name="数据经纪服务有限公司",
    kind="intermediary",
    uscc="91520100MA6K4B0D3X",
    jurisdiction="520100",
    status="admitted",
    dsmm_level=3,
    intermediary_roles=("broker",),
    fee_disclosure="2% of the trade amount, paid by the buyer",
    retains_no_traded_data=True,
)

ASSESSOR_REPORT = Assessment(
    assessor_id="org-assessor", assessor_admitted=True, issued_on=date(2026, 3, 1), valid_until=date(2027, 3, 1)
)

PLAN = PlanFacts(id="plan-1", kind="one_time", price_minor=1_200_000, currency="CNY", pricing_basis="cost")

PRODUCT = ProductFacts(
    id="product-1",
    version=1,
    title="贵阳市主干道实时路况（脱敏） Guiyang arterial road traffic, de-identified",
    category="transport",
    industry_code="5431",
    regions=("520100", "520300"),
    grade="general",
    contains_personal_info=True,
    contains_sensitive_personal_info=False,
    pi_legal_basis="consent",
    separate_consent_for_provision=True,
    pi_impact_assessment_on=date(2026, 2, 1),
    consented_purposes=("traffic_planning", "logistics_routing"),
    sold_under_consent=False,
    deidentification_techniques=("generalisation", "k-anonymity"),
    data_source="self_generated",
    lawful_source_commitment=True,
    compliance_report=ASSESSOR_REPORT,
    registration_number="GZDE-2026-000123",
    permitted_scenarios=("traffic_planning", "logistics_routing"),
    delivery_modes=("file", "api"),
    licence=LicenceTerms(scope="internal analysis", term_days=365, max_licences=100),
    dispute_route="arbitration",
    cost=CostDeclaration(
        collection_minor=300_000,
        processing_minor=250_000,
        storage_minor=50_000,
        compliance_minor=100_000,
        other_minor=0,
        total_minor=700_000,
        currency="CNY",
        method="historical_cost",
    ),
    plans=(PLAN,),
    reference_price_minor=1_150_000,
    valuation=Valuation(method="cost", value_minor=5_000_000, currency="CNY", assessment=ASSESSOR_REPORT),
    quality=QualityIndicators(
        normativity=0.95, completeness=0.97, accuracy=0.93, consistency=0.96, timeliness=0.9, accessibility=0.99
    ),
    provenance=Provenance(
        source_entity="贵阳市交通运行监测中心 road sensors",
        activities=(
            ProvenanceActivity(
                name="collection",
                performed_by="org-provider",
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
                ended_at=datetime(2026, 10, 31, tzinfo=UTC),
            ),
            ProvenanceActivity(
                name="de-identification", performed_by="org-provider", started_at=datetime(2026, 11, 1, tzinfo=UTC)
            ),
        ),
    ),
    fields=(
        FieldSpec(name="segment_id", type="string"),
        FieldSpec(name="timestamp", type="datetime"),
        FieldSpec(name="avg_speed_kmh", type="number"),
        FieldSpec(name="vehicle_count", type="integer"),
        FieldSpec(name="age_band", type="string", personal=True, purposes=("traffic_planning", "logistics_routing")),
    ),
    sample=SampleFacts(
        sha256="a" * 64,
        rows_total=1000,
        columns=("segment_id", "timestamp", "avg_speed_kmh", "vehicle_count", "age_band"),
        rows=(
            ("GY-0001", "2026-10-01T08:00:00+08:00", "32.5", "118", "30-39"),
            ("GY-0002", "2026-10-01T08:00:00+08:00", "41.0", "87", "40-49"),
            ("GY-0003", "2026-10-01T08:00:00+08:00", "18.2", "203", None),
            ("GY-0004", "2026-10-01T08:05:00+08:00", "27.9", "150", "20-29"),
        ),
    ),
    content_sha256="b" * 64,
)

TRADE = TradeFacts(
    scenario="logistics_routing",
    delivery_mode="api",
    quantity=1,
    amount_minor=1_200_000,
    currency="CNY",
    licence_terms_accepted=True,
    dispute_route="arbitration",
    licences_available=42,
)

AUTHORISATION = AuthorisationLink(
    grantor="贵阳市大数据发展管理局",
    grantee="org-provider",
    document="授权运营协议 2026-017",
    valid_until=date(2028, 1, 1),
)
DELIVERY = DeliveryFacts(mode="api", licence_status="active", content_sha256="b" * 64)
SETTLEMENT = SettlementFacts(order_status="completed", amount_minor=1_200_000, currency="CNY")


def _with_check_characters() -> None:
    """The USCCs above end in a placeholder; give each its real GB 32100 check character."""
    from marketplace.kit.identifiers import uscc_check_char

    global PROVIDER, BUYER, INTERMEDIARY
    PROVIDER = replace(PROVIDER, uscc=PROVIDER.uscc[:17] + uscc_check_char(PROVIDER.uscc[:17]))
    BUYER = replace(BUYER, uscc=BUYER.uscc[:17] + uscc_check_char(BUYER.uscc[:17]))
    INTERMEDIARY = replace(INTERMEDIARY, uscc=INTERMEDIARY.uscc[:17] + uscc_check_char(INTERMEDIARY.uscc[:17]))


_with_check_characters()


def admission_snapshot(organization: OrganizationFacts | None = None) -> Snapshot:
    subject = organization or replace(PROVIDER, status="pending")
    return Snapshot(organization=subject)


def listing_snapshot(product: ProductFacts | None = None, provider: OrganizationFacts | None = None) -> Snapshot:
    return Snapshot(provider=provider or PROVIDER, product=product or PRODUCT)


def trade_snapshot(**parts: Any) -> Snapshot:
    values: dict[str, Any] = {"provider": PROVIDER, "buyer": BUYER, "product": PRODUCT, "plan": PLAN, "trade": TRADE}
    values.update(parts)
    return Snapshot(**values)


def delivery_snapshot(**parts: Any) -> Snapshot:
    return trade_snapshot(**{"delivery": DELIVERY, **parts})


def settlement_snapshot(**parts: Any) -> Snapshot:
    return trade_snapshot(**{"settlement": SETTLEMENT, **parts})


def context(stage: Stage, snapshot: Snapshot, now: datetime = NOW) -> RuleContext:
    return RuleContext(stage=stage, now=now, snapshot=snapshot)


CJK = re.compile(r"[\u4e00-\u9fff]")


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    """A rule's findings by check code; each check answers exactly once, and says a catalogued message (so every
    message of every scenario the rule tests build is translated, in Chinese as in English)."""
    checks = [f.check for f in findings]
    assert len(checks) == len(set(checks)), f"one finding per check, got {checks}"
    for finding in findings:
        assert_bilingual(finding)
    return {f.check: f for f in findings}


def assert_bilingual(finding: Finding) -> None:
    assert finding.message_id is not None, f"{finding.check} says plain text: {finding.message!r}"
    chinese = localize(Language.ZH_CN, finding.message_id, "", finding.params)
    assert CJK.search(chinese), f"{finding.message_id} has no Chinese rendering"
    assert localize(Language.EN, finding.message_id, finding.message, finding.params) == finding.message

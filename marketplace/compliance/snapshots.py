"""The frozen facts a rule judges.

The engine builds one `Snapshot` per evaluation from the database (or a JSON file, for the
offline dry-run) and stores it with the verdict, so any verdict can be replayed. Every part
is optional: a stage fills the parts it has (admission: `organization`; listing: `provider`
and `product`; trade: `buyer`, `provider`, `product`, `plan`, `trade` and maybe
`intermediary`; delivery adds `delivery`; settlement adds `settlement`).

Money is in integer minor units of `currency`; shares and scores are floats in [0, 1]. What a provider
declares is carried as declared, not as the request schema would have wished it: a grade, a dispute route, a
pricing basis or a valuation method outside its vocabulary reaches the rule that judges it (S2, R1, R5, R6)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Grade = Literal["general", "important", "core"]
GRADES: tuple[Grade, ...] = get_args(Grade)
DeliveryMode = Literal["file", "api", "privacy_computing"]
DataSource = Literal["self_generated", "public_collection", "authorized_public", "purchased"]
DisputeRoute = Literal["negotiation", "mediation", "arbitration"]
PricingBasis = Literal["cost", "market", "income"]
PlanKind = Literal["one_time", "subscription", "metered", "free"]
ValuationMethod = Literal["cost", "income", "market"]
IntermediaryRole = Literal["broker", "assessor", "delivery"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrganizationFacts(Frozen):
    id: str
    name: str
    kind: Literal["provider", "buyer", "intermediary"]
    uscc: str
    jurisdiction: str = Field(description="GB/T 2260 code (domestic) or ISO 3166-1 alpha-2 (foreign)")
    status: Literal["pending", "under_review", "admitted", "rejected", "suspended"]
    dsmm_level: int = Field(0, description="GB/T 37988 data security capability maturity level, 0-5")
    max_data_grade: Grade = Field("general", description="highest data grade it declares it will handle")
    penalties_last_3y: int = 0
    last_penalty_on: date | None = None
    security_certifications: tuple[str, ...] = ()
    # Data intermediaries (R8)
    intermediary_roles: tuple[IntermediaryRole, ...] = ()
    fee_disclosure: str | None = None
    retains_no_traded_data: bool | None = None
    related_organization_ids: tuple[str, ...] = ()
    # Operation (R7): counted over the operation window
    trades_in_window: int = 0
    complaints_in_window: int = 0
    disputes_in_window: int = 0


class Assessment(Frozen):
    """A report by an assessor (compliance, risk, cross-border, valuation)."""

    assessor_id: str
    assessor_admitted: bool
    issued_on: date
    valid_until: date | None = None
    reference: str | None = None


class AuthorisationLink(Frozen):
    grantor: str
    grantee: str
    document: str
    valid_until: date | None = None


class CostDeclaration(Frozen):
    collection_minor: int
    processing_minor: int
    storage_minor: int
    compliance_minor: int
    other_minor: int
    total_minor: int
    currency: str
    method: str | None = None


class Valuation(Frozen):
    method: str = Field(description="as declared; R6 judges it is one of ValuationMethod")
    value_minor: int
    currency: str
    assessment: Assessment


class QualityIndicators(Frozen):
    normativity: float
    completeness: float
    accuracy: float
    consistency: float
    timeliness: float
    accessibility: float


class ProvenanceActivity(Frozen):
    name: str
    performed_by: str
    started_at: datetime
    ended_at: datetime | None = None


class Provenance(Frozen):
    source_entity: str
    activities: tuple[ProvenanceActivity, ...] = ()
    derived_from: tuple[str, ...] = Field((), description="upstream datasets or products, nearest first")


class FieldSpec(Frozen):
    name: str
    type: str = "string"
    personal: bool = False
    sensitive: bool = False
    direct_identifier: bool = False
    purposes: tuple[str, ...] = Field((), description="scenarios this field is needed for")


class LicenceTerms(Frozen):
    scope: str
    term_days: int | None = None
    resale_allowed: bool = False
    sublicensing_allowed: bool = False
    exclusive: bool = False
    max_licences: int | None = None


class PlanFacts(Frozen):
    id: str
    kind: PlanKind
    price_minor: int
    currency: str
    pricing_basis: str | None = Field(None, description="as declared; R5 judges it is one of PricingBasis")
    period_days: int | None = None
    unit_price_minor: int | None = None


class SampleFacts(Frozen):
    """The product's sample as the rules see it: its rows (capped) and its digest."""

    sha256: str
    rows_total: int
    columns: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...] = Field((), description="the first rows, cells as text or null")


class MeasureBounds(Frozen):
    lower: float
    upper: float


class ComputationFacts(Frozen):
    """What buyers of privacy computing may do with the dataset, and the differential privacy of the answers:
    the epsilon each query spends, the epsilon a licence may spend in all, the clamping bounds of measures."""

    group_by: tuple[str, ...] = ()
    filter: tuple[str, ...] = ()
    measure: tuple[str, ...] = ()
    min_group_size: int | None = None
    epsilon_per_query: float | None = None
    epsilon_budget: float | None = None
    bounds: dict[str, MeasureBounds] | None = None


class ProductFacts(Frozen):
    id: str
    version: int = 1
    title: str
    category: str | None = None
    industry_code: str | None = None
    regions: tuple[str, ...] = ()
    grade: str | None = Field(None, description="as declared; S2 judges that it is one of GRADES")
    public_data: bool = False
    # Personal information (PIPL; GB/T 35273; GB/T 37964)
    contains_personal_info: bool = False
    contains_sensitive_personal_info: bool = False
    pi_legal_basis: str | None = None
    separate_consent_for_provision: bool = False
    separate_consent_for_sensitive: bool = False
    pi_impact_assessment_on: date | None = None
    consented_purposes: tuple[str, ...] = ()
    sold_under_consent: bool = False
    deidentification_techniques: tuple[str, ...] = ()
    # Source (R2)
    data_source: DataSource | None = None
    lawful_source_commitment: bool = False
    authorisation_chain: tuple[AuthorisationLink, ...] = ()
    prohibited_content: tuple[str, ...] = Field((), description="flags raised by provider or reviewers")
    compliance_report: Assessment | None = None
    risk_assessment: Assessment | None = None
    cross_border_assessment: Assessment | None = None
    # Listing (R1, R4, R5, R6)
    registration_number: str | None = None
    permitted_scenarios: tuple[str, ...] = ()
    delivery_modes: tuple[DeliveryMode, ...] = ()
    licence: LicenceTerms | None = None
    dispute_route: str | None = Field(None, description="as declared; R1 judges it against its accepted routes")
    cost: CostDeclaration | None = None
    plans: tuple[PlanFacts, ...] = ()
    reference_price_minor: int | None = None
    government_price_cap_minor: int | None = None
    valuation: Valuation | None = None
    # Quality and description (S5, S9)
    quality: QualityIndicators | None = None
    provenance: Provenance | None = None
    fields: tuple[FieldSpec, ...] = ()
    sample: SampleFacts | None = None
    computation: ComputationFacts | None = None
    content_sha256: str | None = Field(None, description="digest of the full dataset of this version")

    @property
    def known_grade(self) -> Grade | None:
        """The grade when it is general, important or core; None when it is missing or outside the vocabulary,
        which the rules that act on a grade treat alike: ungraded, fail closed (S2 names the bad value)."""
        return self.grade if self.grade in GRADES else None


class PrivateOffer(Frozen):
    price_minor: int
    approved: bool


class TradeFacts(Frozen):
    scenario: str | None = None
    delivery_mode: DeliveryMode
    quantity: int = 1
    amount_minor: int
    currency: str
    licence_terms_accepted: bool = False
    dispute_route: str | None = None
    private_offer: PrivateOffer | None = None
    licences_available: int | None = None


class DeliveryFacts(Frozen):
    mode: DeliveryMode
    licence_status: Literal["active", "suspended", "revoked", "expired"]
    content_sha256: str | None = None


class SettlementFacts(Frozen):
    order_status: str
    amount_minor: int
    currency: str
    disputed: bool = False


class Snapshot(Frozen):
    organization: OrganizationFacts | None = None
    provider: OrganizationFacts | None = None
    buyer: OrganizationFacts | None = None
    intermediary: OrganizationFacts | None = None
    product: ProductFacts | None = None
    plan: PlanFacts | None = None
    trade: TradeFacts | None = None
    delivery: DeliveryFacts | None = None
    settlement: SettlementFacts | None = None
    extensions: dict[str, Any] = Field(default_factory=dict, description="facts for third-party rules")

    def parties(self) -> tuple[tuple[str, OrganizationFacts], ...]:
        """Every organisation in the snapshot, by the part it plays."""
        named = (
            ("organization", self.organization),
            ("provider", self.provider),
            ("buyer", self.buyer),
            ("intermediary", self.intermediary),
        )
        return tuple((role, org) for role, org in named if org is not None)

"""Request and response shapes of the catalog API.

A product's description is flat, as API.md lists it; nested parts (assessments, licence, cost,
valuation, quality, provenance, fields) mirror the facts the listing-stage rules read."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from marketplace.catalog.models import PlanKind, ProductStatus, VersionStatus
from marketplace.compliance.schemas import VerdictRead
from marketplace.kit.i18n import Message
from marketplace.kit.schemas import (
    NO_NUL_PATTERN,
    STRIP,
    TEXT_PATTERN,
    TOKEN_PATTERN,
    WHOLE_NUMBER,
    Reason,
    RequestBody,
    ResponseBody,
)

Text100 = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=TEXT_PATTERN), STRIP]
Text300 = Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=TEXT_PATTERN), STRIP]
LongText = Annotated[str, StringConstraints(max_length=5000, pattern=NO_NUL_PATTERN)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TOKEN_PATTERN)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[StrictInt, Field(ge=0, le=10**15), WHOLE_NUMBER]
Grade = Literal["general", "important", "core"]

# What the listing stage judges is taken as declared, within sizes that protect the service (the columns
# that store it, the listed-version index): a refusal here would be a 400 naming no rule and storing no
# verdict. S2 judges the category and the grade, S7 the industry code, S8 the region codes (and that there
# are some), S5 the quality scores (in [0, 1]), S9 the provenance's names (not blank); R1 the registration
# number, the scenarios, the delivery modes (that there are some), the licence's scope and the dispute
# route, R2 the PI legal basis, R4 the cost (non-negative, in an ISO 4217 currency, its method), R5 the
# reference price and the pricing basis, R6 the valuation (method, positive value, currency). Lists of
# identifiers (tags, scenarios, purposes, techniques, flags) keep their token shape: buyers and rules match
# them exactly.
Declared100 = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL_PATTERN), STRIP]
Declared300 = Annotated[str, StringConstraints(max_length=300, pattern=NO_NUL_PATTERN), STRIP]
# A term of the rulebook's vocabulary (a dispute route, a legal basis, a costing or valuation method), as declared.
DeclaredTerm = Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL_PATTERN)]
Category = Annotated[str, StringConstraints(max_length=40, pattern=NO_NUL_PATTERN)]  # the column's length
IndustryCode = Annotated[str, StringConstraints(max_length=32, pattern=NO_NUL_PATTERN)]
# Sixteen characters a code, a hundred codes: the listed-version index entry stays within PostgreSQL's limit.
RegionCode = Annotated[str, StringConstraints(max_length=16, pattern=NO_NUL_PATTERN)]
DeclaredGrade = Annotated[str, StringConstraints(max_length=16, pattern=NO_NUL_PATTERN)]
PricingBasis = Annotated[str, StringConstraints(max_length=16, pattern=NO_NUL_PATTERN)]
DeclaredCurrency = Annotated[str, StringConstraints(max_length=16, pattern=NO_NUL_PATTERN)]
# Declared amounts move no money: they may be negative, for the rule to say so.
DeclaredMoney = Annotated[StrictInt, Field(ge=-(10**15), le=10**15), WHOLE_NUMBER]
Score = Annotated[float, Field(ge=-1000, le=1000, strict=True, allow_inf_nan=False)]
DeliveryMode = Literal["file", "api", "privacy_computing"]
DataSource = Literal["self_generated", "public_collection", "authorized_public", "purchased"]


class AssessmentIn(RequestBody):
    """A report by an assessor organisation registered on the exchange."""

    assessor_organization_id: uuid.UUID
    issued_on: date
    valid_until: date | None = None
    reference: Text100 | None = None


class AuthorisationLinkIn(RequestBody):
    grantor: Text300
    grantee: Text300
    document: Text300
    valid_until: date | None = None


class LicenceIn(RequestBody):
    scope: Declared300
    term_days: Annotated[StrictInt, Field(ge=1, le=36_500), WHOLE_NUMBER] | None = None
    resale_allowed: StrictBool = False
    sublicensing_allowed: StrictBool = False
    exclusive: StrictBool = False
    max_licences: Annotated[StrictInt, Field(ge=1, le=1_000_000), WHOLE_NUMBER] | None = None


class CostIn(RequestBody):
    collection_minor: DeclaredMoney
    processing_minor: DeclaredMoney
    storage_minor: DeclaredMoney
    compliance_minor: DeclaredMoney
    other_minor: DeclaredMoney
    total_minor: DeclaredMoney
    currency: DeclaredCurrency
    method: DeclaredTerm | None = None


class ValuationIn(RequestBody):
    method: DeclaredTerm
    value_minor: DeclaredMoney
    currency: DeclaredCurrency
    assessment: AssessmentIn


class QualityIn(RequestBody):
    normativity: Score
    completeness: Score
    accuracy: Score
    consistency: Score
    timeliness: Score
    accessibility: Score


class ProvenanceActivityIn(RequestBody):
    name: Declared100
    performed_by: Declared300
    started_at: datetime
    ended_at: datetime | None = None


class ProvenanceIn(RequestBody):
    source_entity: Declared300
    activities: Annotated[list[ProvenanceActivityIn], Field(max_length=50)] = []
    derived_from: Annotated[list[Declared300], Field(max_length=50)] = []


class FieldIn(RequestBody):
    name: Text100
    type: Token = "string"
    personal: StrictBool = False
    sensitive: StrictBool = False
    direct_identifier: StrictBool = False
    purposes: Annotated[list[Token], Field(max_length=20)] = []


# A privacy-loss parameter of differential privacy: positive and finite (counted in millionths).
Epsilon = Annotated[float, Field(ge=0.001, le=1000, strict=True, allow_inf_nan=False)]
BoundValue = Annotated[float, Field(ge=-(10**15), le=10**15, strict=True, allow_inf_nan=False)]


class BoundsIn(RequestBody):
    """Where a measure column's values are clamped before they are summed (lower below upper): the noise grows
    with the range."""

    lower: BoundValue
    upper: BoundValue


class ComputationIn(RequestBody):
    """What buyers of privacy-computing delivery may do with the hosted dataset: the columns they may
    group by, filter on and aggregate, and the smallest group a result may show (never below the
    platform's AGGREGATE_MIN_GROUP_SIZE); and the differential privacy of the answers: the epsilon each
    query spends, the epsilon a licence may spend in all (not below a query's), and the bounds of every
    measure column. The three go together (the catalog refuses them otherwise: `privacy_problems`); the
    listing stage (R3) asks for them when privacy computing is offered."""

    group_by: Annotated[list[Text100], Field(max_length=50)] = []
    filter: Annotated[list[Text100], Field(max_length=50)] = []
    measure: Annotated[list[Text100], Field(max_length=50)] = []
    min_group_size: Annotated[StrictInt, Field(ge=1, le=100_000), WHOLE_NUMBER] | None = None
    epsilon_per_query: Epsilon | None = None
    epsilon_budget: Epsilon | None = None
    bounds: Annotated[dict[Text100, BoundsIn], Field(max_length=50)] | None = None

    def privacy_problems(self) -> list[dict[str, Any]]:
        """What makes the privacy terms inconsistent, as problem-detail errors. Not a validator: JSON Schema
        cannot say these, and a body the API's schema accepts is not refused as malformed."""
        query, budget, bounds = self.epsilon_per_query, self.epsilon_budget, self.bounds
        if query is None and budget is None and bounds is None:
            return []
        if query is None or budget is None or bounds is None:
            together = Message(
                "catalog.privacy-terms-together", "epsilon_per_query, epsilon_budget and bounds are declared together"
            )
            return [_problem("computation", together)]
        problems = [
            _problem(f"computation.bounds.{c}", Message("catalog.bounds-order", "lower must be below upper"))
            for c, b in bounds.items()
            if not b.lower < b.upper
        ]
        if query > budget:
            exceeds = Message("catalog.epsilon-exceeds-budget", "cannot exceed epsilon_budget")
            problems.append(_problem("computation.epsilon_per_query", exceeds))
        if unbounded := sorted(set(self.measure) - set(bounds)):
            missing = Message(
                "catalog.bounds-missing",
                "every measure column needs bounds; none for {columns}",
                columns=str(unbounded),
            )
            problems.append(_problem("computation.bounds", missing))
        if stray := sorted(set(bounds) - set(self.measure)):
            extra = Message(
                "catalog.bounds-stray", "bounds are for measure columns; {columns} are not", columns=str(stray)
            )
            problems.append(_problem("computation.bounds", extra))
        return problems


def _problem(key: str, message: Message) -> dict[str, Any]:
    return {"key": key, "message": message, "source": "body"}


class ProductDetails(RequestBody):
    """What a provider declares about one version beyond what search filters on: a version's `details`, as
    written and as read back (`ProductRead.details`); the rules read them."""

    public_data: StrictBool = False
    contains_sensitive_personal_info: StrictBool = False
    pi_legal_basis: DeclaredTerm | None = None
    separate_consent_for_provision: StrictBool = False
    separate_consent_for_sensitive: StrictBool = False
    pi_impact_assessment_on: date | None = None
    consented_purposes: Annotated[list[Token], Field(max_length=20)] = []
    sold_under_consent: StrictBool = False
    deidentification_techniques: Annotated[list[Token], Field(max_length=10)] = []
    lawful_source_commitment: StrictBool = False
    authorisation_chain: Annotated[list[AuthorisationLinkIn], Field(max_length=10)] = []
    prohibited_content: Annotated[list[Token], Field(max_length=10)] = []
    compliance_report: AssessmentIn | None = None
    risk_assessment: AssessmentIn | None = None
    cross_border_assessment: AssessmentIn | None = None
    registration_number: Declared100 | None = None
    licence: LicenceIn | None = None
    dispute_route: DeclaredTerm | None = None
    cost: CostIn | None = None
    reference_price_minor: DeclaredMoney | None = None
    government_price_cap_minor: Money | None = None
    valuation: ValuationIn | None = None
    quality: QualityIn | None = None
    provenance: ProvenanceIn | None = None
    fields: Annotated[list[FieldIn], Field(max_length=200)] = []
    computation: ComputationIn | None = None
    update_frequency: Token | None = None
    time_coverage_start: date | None = None
    time_coverage_end: date | None = None


class ProductDescription(ProductDetails):
    """Everything a provider declares about one version of a product: its details, and the fields search
    filters on (a version's columns)."""

    title: Text300
    description: LongText = ""
    tags: Annotated[list[Token], Field(max_length=20)] = []
    category: Category
    industry_code: IndustryCode
    regions: Annotated[list[RegionCode], Field(max_length=100)]
    grade: DeclaredGrade
    contains_personal_info: StrictBool = False
    data_source: DataSource
    permitted_scenarios: Annotated[list[Token], Field(max_length=20)]
    delivery_modes: Annotated[list[DeliveryMode], Field(max_length=3)]


class ProductCreate(ProductDescription):
    organization_id: uuid.UUID


class ProductPatch(RequestBody):
    """PATCH: the fields given replace the current ones; a listed version is never changed, the
    edit goes into a new draft version that is reviewed again."""

    title: Text300 | None = None
    description: LongText | None = None
    tags: Annotated[list[Token], Field(max_length=20)] | None = None
    category: Category | None = None
    industry_code: IndustryCode | None = None
    regions: Annotated[list[RegionCode], Field(max_length=100)] | None = None
    grade: DeclaredGrade | None = None
    public_data: StrictBool | None = None
    contains_personal_info: StrictBool | None = None
    contains_sensitive_personal_info: StrictBool | None = None
    pi_legal_basis: DeclaredTerm | None = None
    separate_consent_for_provision: StrictBool | None = None
    separate_consent_for_sensitive: StrictBool | None = None
    pi_impact_assessment_on: date | None = None
    consented_purposes: Annotated[list[Token], Field(max_length=20)] | None = None
    sold_under_consent: StrictBool | None = None
    deidentification_techniques: Annotated[list[Token], Field(max_length=10)] | None = None
    data_source: DataSource | None = None
    lawful_source_commitment: StrictBool | None = None
    authorisation_chain: Annotated[list[AuthorisationLinkIn], Field(max_length=10)] | None = None
    prohibited_content: Annotated[list[Token], Field(max_length=10)] | None = None
    compliance_report: AssessmentIn | None = None
    risk_assessment: AssessmentIn | None = None
    cross_border_assessment: AssessmentIn | None = None
    registration_number: Declared100 | None = None
    permitted_scenarios: Annotated[list[Token], Field(max_length=20)] | None = None
    delivery_modes: Annotated[list[DeliveryMode], Field(max_length=3)] | None = None
    licence: LicenceIn | None = None
    dispute_route: DeclaredTerm | None = None
    cost: CostIn | None = None
    reference_price_minor: DeclaredMoney | None = None
    government_price_cap_minor: Money | None = None
    valuation: ValuationIn | None = None
    quality: QualityIn | None = None
    provenance: ProvenanceIn | None = None
    fields: Annotated[list[FieldIn], Field(max_length=200)] | None = None
    computation: ComputationIn | None = None
    update_frequency: Token | None = None
    time_coverage_start: date | None = None
    time_coverage_end: date | None = None


class PlanCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "one_time", "price_minor": 1200000, "currency": "CNY", "pricing_basis": "cost"},
                {
                    "kind": "subscription",
                    "price_minor": 120000,
                    "currency": "CNY",
                    "pricing_basis": "market",
                    "period_days": 30,
                },
                {
                    "kind": "metered",
                    "price_minor": 60000,
                    "currency": "CNY",
                    "pricing_basis": "market",
                    "unit_price_minor": 5,
                    "included_calls": 10000,
                    "monthly_cap_minor": 1200000,
                },
            ]
        }
    )

    kind: PlanKind
    price_minor: Money
    currency: Currency
    pricing_basis: PricingBasis | None = None
    period_days: Annotated[StrictInt, Field(ge=1, le=3660), WHOLE_NUMBER] | None = None
    unit_price_minor: Money | None = None
    included_calls: Annotated[StrictInt, Field(ge=0, le=10**9), WHOLE_NUMBER] | None = None
    monthly_cap_minor: Money | None = None


class PlanRead(ResponseBody):
    id: uuid.UUID
    kind: PlanKind
    price_minor: int
    currency: str
    pricing_basis: str | None
    period_days: int | None
    unit_price_minor: int | None
    included_calls: int | None
    monthly_cap_minor: int | None


class SampleRead(ResponseBody):
    id: uuid.UUID
    sha256: str
    rows: int
    columns: list[str]
    media_type: str
    size_bytes: int


class ProductRead(ResponseBody):
    id: uuid.UUID
    organization_id: uuid.UUID
    status: ProductStatus
    version: int
    version_status: VersionStatus
    listed_version: int | None
    title: str
    description: str
    tags: list[str]
    category: str
    industry_code: str
    regions: list[str]
    grade: str
    contains_personal_info: bool
    data_source: str
    permitted_scenarios: list[str]
    delivery_modes: list[str]
    data_hosted: bool = Field(
        description="the version's full dataset is hosted (its sha256 registered): what every delivery mode serves"
    )
    details: ProductDetails
    plans: list[PlanRead]
    sample: SampleRead | None
    decision_reason: str | None
    created_at: datetime
    updated_at: datetime


class SubmissionResponse(ResponseBody):
    status: ProductStatus
    version: int
    verdict: VerdictRead


class ProductDecision(RequestBody):
    decision: Literal["approve", "reject"]
    reason: Reason


class ProductSummary(ResponseBody):
    id: uuid.UUID
    organization_id: uuid.UUID
    version: int
    title: str
    description: str
    tags: list[str]
    category: str
    industry_code: str
    regions: list[str]
    grade: str
    delivery_modes: list[str]
    min_price_minor: int | None
    listed_at: datetime | None


class SearchFacets(ResponseBody):
    """How many of all the matches (not only this page's) have each value."""

    category: dict[str, int] = Field(description="matches by category")
    grade: dict[str, int] = Field(description="matches by data grade")


class ProductSearchPage(ResponseBody):
    items: list[ProductSummary]
    total: int
    limit: int
    offset: int
    facets: SearchFacets

"""Request and response shapes of the accounts API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from marketplace.accounts.models import DataGrade, OrganizationKind, OrganizationStatus, Role, Scope
from marketplace.compliance.schemas import VerdictRead
from marketplace.kit.schemas import (
    LOWER,
    NO_NUL_PATTERN,
    STRIP,
    TEXT_PATTERN,
    WHOLE_NUMBER,
    Email,
    Name,
    Reason,
    RequestBody,
    ResponseBody,
)

Password = Annotated[str, StringConstraints(min_length=12, max_length=256)]
# Codes the rulebook judges are taken as sent, within a size that protects the service: S1 judges a USCC's
# length, alphabet and check character at admission (and every party's at trade); S8 judges a jurisdiction
# (a GB/T 2260 division code, domestic, or an ISO 3166-1 alpha-2 code, foreign) at listing and trade. A
# refusal here would be a 400 naming no rule and storing no verdict.
Uscc = Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL_PATTERN)]
Jurisdiction = Annotated[str, StringConstraints(max_length=16, pattern=NO_NUL_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=300, pattern=NO_NUL_PATTERN), STRIP]
LongText = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL_PATTERN), STRIP]
Certification = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=TEXT_PATTERN), STRIP]
# As long as the columns that store them.
PersonName = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL_PATTERN), STRIP]
KeyName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=TEXT_PATTERN), STRIP]
# GB/T 37988 levels are 0-5; S10 judges that (level-recorded), the bounds here only keep it a small integer.
DsmmLevel = Annotated[StrictInt, Field(ge=-1000, le=1000), WHOLE_NUMBER]
PenaltyCount = Annotated[StrictInt, Field(ge=0, le=10_000), WHOLE_NUMBER]


class RegisterRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "li.na@zunyi-logistics.example", "password": "correct horse battery", "name": "李娜"}
            ]
        }
    )

    email: Email
    password: Password
    name: Name


class UserRead(ResponseBody):
    id: uuid.UUID
    email: str
    name: str


class TokenRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "li.na@zunyi-logistics.example", "password": "correct horse battery"}]
        }
    )

    email: Annotated[str, StringConstraints(max_length=254, pattern=NO_NUL_PATTERN), STRIP, LOWER]
    password: Annotated[str, StringConstraints(max_length=256)]


class TokenResponse(ResponseBody):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class MembershipSummary(ResponseBody):
    organization_id: uuid.UUID
    role: Role


class MeResponse(ResponseBody):
    id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    memberships: list[MembershipSummary]


class IntermediaryQualification(RequestBody):
    """What a data intermediary declares (RULEBOOK R8)."""

    roles: Annotated[list[Literal["broker", "assessor", "delivery"]], Field(max_length=3)]  # none: R8 refuses
    fee_disclosure: LongText
    retains_no_traded_data: StrictBool


class OrganizationCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "遵义物流数据服务有限公司",
                    "uscc": "91520300MA6H2K8Q39",
                    "kind": "buyer",
                    "jurisdiction": "520300",
                    "legal_representative": "王强",
                    "dsmm_level": 3,
                    "max_data_grade": "general",
                }
            ]
        }
    )

    name: Name
    uscc: Uscc
    kind: OrganizationKind
    jurisdiction: Jurisdiction
    legal_representative: PersonName | None = None
    registered_address: ShortText | None = None
    business_scope: LongText | None = None
    dsmm_level: DsmmLevel = 0
    max_data_grade: DataGrade = DataGrade.GENERAL
    penalties_last_3y: PenaltyCount = 0
    last_penalty_on: date | None = None
    security_certifications: Annotated[list[Certification], Field(max_length=50)] = []
    intermediary: IntermediaryQualification | None = None


class OrganizationUpdate(RequestBody):
    name: Name | None = None
    jurisdiction: Jurisdiction | None = None
    legal_representative: PersonName | None = None
    registered_address: ShortText | None = None
    business_scope: LongText | None = None
    dsmm_level: DsmmLevel | None = None
    max_data_grade: DataGrade | None = None
    penalties_last_3y: PenaltyCount | None = None
    last_penalty_on: date | None = None
    security_certifications: Annotated[list[Certification], Field(max_length=50)] | None = None
    intermediary: IntermediaryQualification | None = None


class OrganizationRead(ResponseBody):
    id: uuid.UUID
    name: str
    uscc: str
    kind: OrganizationKind
    jurisdiction: str
    status: OrganizationStatus
    legal_representative: str | None
    registered_address: str | None
    business_scope: str | None
    dsmm_level: int
    max_data_grade: DataGrade
    penalties_last_3y: int
    last_penalty_on: date | None
    security_certifications: list[str]
    intermediary: IntermediaryQualification | None
    decision_reason: str | None
    admitted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AdmissionResponse(ResponseBody):
    status: OrganizationStatus
    verdict: VerdictRead


class DecisionRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"decision": "approve", "reason": "营业执照与统一社会信用代码已核验"}]}
    )

    decision: Literal["approve", "reject"]
    reason: Reason


class StandingRequest(RequestBody):
    standing: Literal["suspended", "admitted"]
    reason: Reason


class MembershipCreate(RequestBody):
    email: Email
    role: Role


class MembershipUpdate(RequestBody):
    role: Role


class MembershipRead(ResponseBody):
    id: uuid.UUID
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    created_at: datetime


class ApiKeyCreate(RequestBody):
    organization_id: uuid.UUID
    name: KeyName
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(Scope))]
    expires_in_days: Annotated[StrictInt, Field(ge=1, le=730), WHOLE_NUMBER] = 90


class ApiKeyRead(ResponseBody):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[Scope]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="the secret, shown only in this response")


class UserAdminRead(ResponseBody):
    id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    status: str
    created_at: datetime


class UserStatusChange(RequestBody):
    status: Literal["active", "disabled"]
    reason: Reason

"""Demonstration data: an administrator, two admitted providers and an admitted buyer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import DataGrade, OrganizationKind, OrganizationStatus, User
from marketplace.accounts.principal import Principal
from marketplace.accounts.schemas import OrganizationCreate, RegisterRequest
from marketplace.accounts.service import AccountService
from marketplace.compliance.rulebook import Rulebook
from marketplace.kit.identifiers import uscc_check_char

DEMO_ACTOR = "demo"
# Demonstration credentials, printed on purpose: this data is for a local sandbox only.
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@demo.example", "demo-admin-password"
MEMBER_PASSWORD = "demo-member-password"  # noqa: S105


@dataclass(frozen=True)
class DemoOrganization:
    owner_email: str
    owner_name: str
    name: str
    uscc_body: str
    kind: OrganizationKind
    jurisdiction: str
    dsmm_level: int
    max_data_grade: DataGrade
    certifications: tuple[str, ...]


ORGANIZATIONS = (
    DemoOrganization(
        "provider@guiyang-traffic.example",
        "Li Wei",
        "贵阳交通数据科技有限公司 Guiyang Traffic Data Co.",
        "91520100MA6E1T0A0",
        OrganizationKind.PROVIDER,
        "520100",
        3,
        DataGrade.IMPORTANT,
        ("ISO/IEC 27001", "DSMM level 3"),
    ),
    DemoOrganization(
        "provider@qianxin-weather.example",
        "Zhang Min",
        "黔信气象数据服务有限公司 Qianxin Weather Data",
        "91522700MA6H2W0B1",
        OrganizationKind.PROVIDER,
        "522700",
        4,
        DataGrade.IMPORTANT,
        ("ISO/IEC 27001", "DSMM level 4"),
    ),
    DemoOrganization(
        "buyer@zunyi-logistics.example",
        "Wang Fang",
        "遵义智慧物流有限公司 Zunyi Smart Logistics",
        "91520300MA6J3L0C2",
        OrganizationKind.BUYER,
        "520300",
        2,
        DataGrade.GENERAL,
        ("MLPS level 2",),
    ),
)


async def seed_demo(session: AsyncSession, rulebook: Rulebook, *, only_if_empty: bool) -> str:
    if only_if_empty and (await session.execute(select(func.count()).select_from(User))).scalar_one() > 0:
        return "The database already has accounts; demo data not added."
    accounts = AccountService(session)
    admin = await accounts.create_admin(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Demo Admin", actor=DEMO_ACTOR)
    admin_principal = Principal(user_id=admin.id, is_admin=True)
    lines = [
        "Demo data is ready. Log in with POST /api/v1/auth/token {email, password}:",
        f"  administrator  {ADMIN_EMAIL} / {ADMIN_PASSWORD}",
    ]
    for spec in ORGANIZATIONS:
        user = await accounts.register(
            RegisterRequest(email=spec.owner_email, password=MEMBER_PASSWORD, name=spec.owner_name)
        )
        owner = Principal(user_id=user.id)
        organization = await accounts.create_organization(
            owner,
            OrganizationCreate(
                name=spec.name,
                uscc=spec.uscc_body + uscc_check_char(spec.uscc_body),
                kind=spec.kind,
                jurisdiction=spec.jurisdiction,
                dsmm_level=spec.dsmm_level,
                max_data_grade=spec.max_data_grade,
                security_certifications=list(spec.certifications),
            ),
        )
        admitted, _ = await accounts.request_admission(owner, organization.id, rulebook)
        if admitted.status == OrganizationStatus.UNDER_REVIEW:
            await accounts.decide_admission(admin_principal, organization.id, "approve", "demo qualification reviewed")
        lines.append(f"  {spec.kind.value:<13}  {spec.owner_email} / {MEMBER_PASSWORD}  ({spec.name})")
    lines.append("API documentation: http://127.0.0.1:8000/schema")
    return "\n".join(lines)

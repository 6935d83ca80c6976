"""HTTP endpoints of the accounts domain."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from marketplace.accounts.auth import AuthService
from marketplace.accounts.members import MembershipService
from marketplace.accounts.models import Organization, OrganizationStatus, Scope, User
from marketplace.accounts.schemas import (
    AdmissionResponse,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    DecisionRequest,
    IntermediaryQualification,
    MembershipCreate,
    MembershipRead,
    MembershipSummary,
    MembershipUpdate,
    MeResponse,
    OrganizationCreate,
    OrganizationRead,
    OrganizationUpdate,
    RegisterRequest,
    StandingRequest,
    TokenRequest,
    TokenResponse,
    UserAdminRead,
    UserRead,
    UserStatusChange,
)
from marketplace.accounts.service import AccountService
from marketplace.compliance.schemas import VerdictRead
from marketplace.compliance.service import ComplianceService
from marketplace.flows.admission import Admission
from marketplace.flows.registration import Registration
from marketplace.web.language import RequestLanguage
from marketplace.web.pagination import PAGED, Page, Paging
from marketplace.web.principal import ADMIN_ONLY, AUTHENTICATED, Access, Caller
from marketplace.web.problems import NO_STORE, problem_responses

Accounts = NamedDependency[AccountService]
Memberships = NamedDependency[MembershipService]


def organization_read(organization: Organization) -> OrganizationRead:
    intermediary = (
        IntermediaryQualification.model_validate(organization.intermediary) if organization.intermediary else None
    )
    return OrganizationRead.model_validate(
        {**organization.model_dump(exclude={"intermediary"}), "intermediary": intermediary}
    )


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["accounts"]

    @post("/register", responses=problem_responses(409, 429), opt={"scope": Access.PUBLIC})
    async def register(
        self,
        data: JSONBody[RegisterRequest],
        request: Request[Any, Any, State],
        registration: NamedDependency[Registration],
    ) -> UserRead:
        """Create a person's account (a few per client address and hour: see REGISTRATION_MAX_PER_ADDRESS)."""
        address = request.client.host if request.client else "unknown"
        return UserRead.model_validate(await registration.register(data, address))

    @post(
        "/token",
        status_code=200,
        cache_control=NO_STORE,
        responses=problem_responses(401, 429),
        opt={"scope": Access.PUBLIC},
    )
    async def token(
        self, data: JSONBody[TokenRequest], request: Request[Any, Any, State], auth: NamedDependency[AuthService]
    ) -> TokenResponse:
        """Exchange an e-mail and password for a short-lived access token."""
        address = request.client.host if request.client else "unknown"
        issued = await auth.login(data.email, data.password, address)
        return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["accounts"]
    dependencies = AUTHENTICATED

    @get("/", responses=problem_responses(401, 403), opt={"scope": Access.PERSON})
    async def me(self, principal: Caller, accounts: Accounts) -> MeResponse:
        """The caller's account and memberships."""
        user, memberships = await accounts.me(principal)
        return MeResponse(
            id=user.id,
            email=user.email,
            name=user.name,
            is_admin=user.is_admin,
            memberships=[MembershipSummary.model_validate(m) for m in memberships],
        )

    @delete("/", responses=problem_responses(401, 403, 409), opt={"scope": Access.PERSON})
    async def delete_me(self, principal: Caller, accounts: Accounts) -> None:
        """Delete the caller's account; its tokens stop working at once."""
        await accounts.delete_me(principal)


class OrganizationController(Controller):
    path = "/api/v1/organizations"
    tags = ["organizations"]
    dependencies = {**AUTHENTICATED, **PAGED}

    @post("/", responses=problem_responses(401, 403, 409), opt={"scope": Access.PERSON})
    async def create(
        self, data: JSONBody[OrganizationCreate], principal: Caller, accounts: Accounts
    ) -> OrganizationRead:
        """Register an organisation; it starts pending and the caller becomes its owner."""
        return organization_read(await accounts.create_organization(principal, data))

    @get("/", responses=problem_responses(401, 403), opt={"scope": Scope.ORGANIZATIONS_READ})
    async def list_mine(self, principal: Caller, accounts: Accounts, page: Paging) -> Page[OrganizationRead]:
        """The organisations the caller belongs to."""
        rows, total = await accounts.my_organizations(principal, limit=page.limit, offset=page.offset)
        return Page(items=[organization_read(r) for r in rows], total=total, limit=page.limit, offset=page.offset)

    @get("/{organization_id:uuid}", responses=problem_responses(401, 403, 404), opt={"scope": Scope.ORGANIZATIONS_READ})
    async def read(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, accounts: Accounts
    ) -> OrganizationRead:
        """An organisation its caller belongs to (administrators see every one); to others it does not exist."""
        return organization_read(await accounts.visible_organization(principal, organization_id))

    @get(
        "/{organization_id:uuid}/verdicts",
        responses=problem_responses(401, 403, 404),
        opt={"scope": Scope.ORGANIZATIONS_READ},
    )
    async def verdicts(
        self,
        organization_id: FromPath[uuid.UUID],
        principal: Caller,
        accounts: Accounts,
        compliance: NamedDependency[ComplianceService],
        language: RequestLanguage,
    ) -> list[VerdictRead]:
        """The organisation's admission verdicts, newest first, with every finding; seen by its members."""
        organization = await accounts.visible_organization(principal, organization_id)
        return [
            VerdictRead.of_stored(stored, language)
            for stored in await compliance.history("organization", organization.id)
        ]

    @patch("/{organization_id:uuid}", responses=problem_responses(401, 403, 404, 409), opt={"scope": Access.PERSON})
    async def update(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[OrganizationUpdate],
        principal: Caller,
        accounts: Accounts,
    ) -> OrganizationRead:
        """Change qualification details while the organisation is pending or rejected."""
        return organization_read(await accounts.update_organization(principal, organization_id, data))

    @post(
        "/{organization_id:uuid}/admission",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.PERSON},
    )
    async def admission(
        self,
        organization_id: FromPath[uuid.UUID],
        principal: Caller,
        admission: NamedDependency[Admission],
        language: RequestLanguage,
    ) -> AdmissionResponse:
        """Ask to be admitted: the rulebook's admission stage admits, rejects with findings, or holds the
        application for an administrator."""
        organization, verdict = await admission.request(principal, organization_id)
        return AdmissionResponse(status=organization.status, verdict=VerdictRead.of_stored(verdict, language))

    @get("/{organization_id:uuid}/members", responses=problem_responses(401, 403, 404), opt={"scope": Access.PERSON})
    async def members(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, memberships: Memberships
    ) -> list[MembershipRead]:
        """The organisation's members and their roles; seen by its members."""
        rows = await memberships.members(principal, organization_id)
        return [MembershipRead.model_validate(r) for r in rows]

    @post(
        "/{organization_id:uuid}/members",
        responses=problem_responses(401, 403, 404, 409, 422),
        opt={"scope": Access.PERSON},
    )
    async def add_member(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[MembershipCreate],
        principal: Caller,
        memberships: Memberships,
    ) -> MembershipRead:
        """Add a registered person to the organisation."""
        return MembershipRead.model_validate(await memberships.add_member(principal, organization_id, data))

    @patch(
        "/{organization_id:uuid}/members/{membership_id:uuid}",
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.PERSON},
    )
    async def change_member(
        self,
        organization_id: FromPath[uuid.UUID],
        membership_id: FromPath[uuid.UUID],
        data: JSONBody[MembershipUpdate],
        principal: Caller,
        memberships: Memberships,
    ) -> MembershipRead:
        """Change a member's role (owners and admins manage members; only an owner grants or takes the owner
        role; an organisation keeps at least one owner)."""
        membership = await memberships.change_member_role(principal, organization_id, membership_id, data.role)
        return MembershipRead.model_validate(membership)

    @delete(
        "/{organization_id:uuid}/members/{membership_id:uuid}",
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.PERSON},
    )
    async def remove_member(
        self,
        organization_id: FromPath[uuid.UUID],
        membership_id: FromPath[uuid.UUID],
        principal: Caller,
        memberships: Memberships,
    ) -> None:
        """Remove a member (owners and admins manage members; only an owner removes an owner; an organisation
        keeps at least one owner)."""
        await memberships.remove_member(principal, organization_id, membership_id)


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["api keys"]
    dependencies = AUTHENTICATED

    @post("/", cache_control=NO_STORE, responses=problem_responses(401, 403, 404), opt={"scope": Access.PERSON})
    async def create(self, data: JSONBody[ApiKeyCreate], principal: Caller, memberships: Memberships) -> ApiKeyCreated:
        """Create an API key for an organisation; the key is shown only in this response."""
        row, key = await memberships.create_api_key(principal, data)
        return ApiKeyCreated.model_validate({**row.model_dump(), "key": key})

    @get("/", responses=problem_responses(401, 403, 404), opt={"scope": Access.PERSON})
    async def list_keys(
        self,
        organization_id: Annotated[uuid.UUID, QueryParameter()],
        principal: Caller,
        memberships: Memberships,
    ) -> list[ApiKeyRead]:
        """The organisation's API keys (prefix, scopes, expiry, last use); never the secret, shown once at creation."""
        return [ApiKeyRead.model_validate(r) for r in await memberships.api_keys(principal, organization_id)]

    @delete("/{key_id:uuid}", responses=problem_responses(401, 403, 404), opt={"scope": Access.PERSON})
    async def revoke(self, key_id: FromPath[uuid.UUID], principal: Caller, memberships: Memberships) -> None:
        """Revoke a key; it stops working at once."""
        await memberships.revoke_api_key(principal, key_id)


class AdminAccountsController(Controller):
    path = "/api/v1/admin"
    tags = ["administration"]
    dependencies = {**ADMIN_ONLY, **PAGED}

    @get("/organizations", responses=problem_responses(401, 403), opt={"scope": Access.ADMIN})
    async def organizations(
        self,
        admin: Caller,
        accounts: Accounts,
        page: Paging,
        status: Annotated[OrganizationStatus | None, QueryParameter()] = None,
    ) -> Page[OrganizationRead]:
        """Every organisation, oldest first, optionally with one status (the admission queue: `under_review`)."""
        rows, total = await accounts.list_organizations(status=status, limit=page.limit, offset=page.offset)
        return Page(items=[organization_read(r) for r in rows], total=total, limit=page.limit, offset=page.offset)

    @post(
        "/organizations/{organization_id:uuid}/decision",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.ADMIN},
    )
    async def decide(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionRequest],
        admin: Caller,
        accounts: Accounts,
    ) -> OrganizationRead:
        """Admit or reject an organisation under review."""
        organization = await accounts.decide_admission(admin, organization_id, data.decision, data.reason)
        return organization_read(organization)

    @post(
        "/organizations/{organization_id:uuid}/standing",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.ADMIN},
    )
    async def change_standing(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[StandingRequest],
        admin: Caller,
        accounts: Accounts,
    ) -> OrganizationRead:
        """Suspend an admitted organisation, or reinstate a suspended one."""
        organization = await accounts.change_standing(admin, organization_id, data.standing, data.reason)
        return organization_read(organization)

    @get("/users", responses=problem_responses(401, 403), opt={"scope": Access.ADMIN})
    async def users(self, admin: Caller, accounts: Accounts, page: Paging) -> Page[UserAdminRead]:
        """Every user account, newest first."""
        rows, total = await accounts.list_users(limit=page.limit, offset=page.offset)
        return Page(items=[_user_admin_read(r) for r in rows], total=total, limit=page.limit, offset=page.offset)

    @post(
        "/users/{user_id:uuid}/status",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.ADMIN},
    )
    async def user_status(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[UserStatusChange],
        admin: Caller,
        accounts: Accounts,
    ) -> UserAdminRead:
        """Disable or re-enable an account; a disabled account's tokens stop working at once."""
        user = await accounts.change_user_status(admin, user_id, data.status, data.reason)
        return _user_admin_read(user)


def _user_admin_read(user: User) -> UserAdminRead:
    return UserAdminRead.model_validate(user)

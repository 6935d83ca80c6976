"""HTTP endpoints of the accounts domain."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter

from marketplace.accounts.guards import ADMIN_ONLY, AUTHENTICATED, SECURITY, Caller
from marketplace.accounts.models import Organization, OrganizationStatus, User
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
from marketplace.accounts.service import AccountService, AuthService
from marketplace.compliance.guards import CurrentRulebook
from marketplace.compliance.schemas import VerdictRead
from marketplace.db import DbSession
from marketplace.errors import problem_responses
from marketplace.kit.pagination import PAGED, Page, Paging


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

    @post("/register", responses=problem_responses(409))
    async def register(self, data: JSONBody[RegisterRequest], db_session: DbSession) -> UserRead:
        """Create a person's account."""
        return UserRead.model_validate(await AccountService(db_session).register(data))

    @post("/token", status_code=200, responses=problem_responses(401, 429))
    async def token(
        self, data: JSONBody[TokenRequest], request: Request[Any, Any, State], db_session: DbSession
    ) -> TokenResponse:
        """Exchange an e-mail and password for a short-lived access token."""
        address = request.client.host if request.client else "unknown"
        issued = await AuthService.from_state(db_session, request.app.state).login(data.email, data.password, address)
        return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["accounts"]
    dependencies = AUTHENTICATED
    security = SECURITY

    @get("/", responses=problem_responses(401, 403))
    async def me(self, principal: Caller, db_session: DbSession) -> MeResponse:
        """The caller's account and memberships."""
        user, memberships = await AccountService(db_session).me(principal)
        return MeResponse(
            id=user.id,
            email=user.email,
            name=user.name,
            is_admin=user.is_admin,
            memberships=[MembershipSummary.model_validate(m) for m in memberships],
        )

    @delete("/", responses=problem_responses(401, 403, 409))
    async def delete_me(self, principal: Caller, db_session: DbSession) -> None:
        """Delete the caller's account; its tokens stop working at once."""
        await AccountService(db_session).delete_me(principal)


class OrganizationController(Controller):
    path = "/api/v1/organizations"
    tags = ["organizations"]
    dependencies = {**AUTHENTICATED, **PAGED}
    security = SECURITY

    @post("/", responses=problem_responses(401, 403, 409))
    async def create(
        self, data: JSONBody[OrganizationCreate], principal: Caller, db_session: DbSession
    ) -> OrganizationRead:
        """Register an organisation; it starts pending and the caller becomes its owner."""
        return organization_read(await AccountService(db_session).create_organization(principal, data))

    @get("/", responses=problem_responses(401))
    async def list_mine(self, principal: Caller, db_session: DbSession, page: Paging) -> Page[OrganizationRead]:
        """The organisations the caller belongs to."""
        rows, total = await AccountService(db_session).my_organizations(principal, limit=page.limit, offset=page.offset)
        return Page(items=[organization_read(r) for r in rows], total=total, limit=page.limit, offset=page.offset)

    @get("/{organization_id:uuid}", responses=problem_responses(401, 404))
    async def read(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, db_session: DbSession
    ) -> OrganizationRead:
        return organization_read(await AccountService(db_session).visible_organization(principal, organization_id))

    @patch("/{organization_id:uuid}", responses=problem_responses(401, 403, 404, 409))
    async def update(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[OrganizationUpdate],
        principal: Caller,
        db_session: DbSession,
    ) -> OrganizationRead:
        """Change qualification details while the organisation is pending or rejected."""
        return organization_read(await AccountService(db_session).update_organization(principal, organization_id, data))

    @post("/{organization_id:uuid}/admission", status_code=200, responses=problem_responses(401, 403, 404, 409))
    async def admission(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, db_session: DbSession, rulebook: CurrentRulebook
    ) -> AdmissionResponse:
        """Ask to be admitted: the rulebook's admission stage admits, rejects with findings, or holds the
        application for an administrator."""
        organization, verdict = await AccountService(db_session).request_admission(principal, organization_id, rulebook)
        return AdmissionResponse(status=organization.status, verdict=VerdictRead.of_stored(verdict))

    @get("/{organization_id:uuid}/members", responses=problem_responses(401, 403, 404))
    async def members(
        self, organization_id: FromPath[uuid.UUID], principal: Caller, db_session: DbSession
    ) -> list[MembershipRead]:
        rows = await AccountService(db_session).members(principal, organization_id)
        return [MembershipRead.model_validate(r) for r in rows]

    @post("/{organization_id:uuid}/members", responses=problem_responses(401, 403, 404, 409, 422))
    async def add_member(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[MembershipCreate],
        principal: Caller,
        db_session: DbSession,
    ) -> MembershipRead:
        """Add a registered person to the organisation."""
        return MembershipRead.model_validate(
            await AccountService(db_session).add_member(principal, organization_id, data)
        )

    @patch(
        "/{organization_id:uuid}/members/{membership_id:uuid}",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def change_member(
        self,
        organization_id: FromPath[uuid.UUID],
        membership_id: FromPath[uuid.UUID],
        data: JSONBody[MembershipUpdate],
        principal: Caller,
        db_session: DbSession,
    ) -> MembershipRead:
        membership = await AccountService(db_session).change_member_role(
            principal, organization_id, membership_id, data.role
        )
        return MembershipRead.model_validate(membership)

    @delete(
        "/{organization_id:uuid}/members/{membership_id:uuid}",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def remove_member(
        self,
        organization_id: FromPath[uuid.UUID],
        membership_id: FromPath[uuid.UUID],
        principal: Caller,
        db_session: DbSession,
    ) -> None:
        await AccountService(db_session).remove_member(principal, organization_id, membership_id)


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["api keys"]
    dependencies = AUTHENTICATED
    security = SECURITY

    @post("/", responses=problem_responses(401, 403, 404))
    async def create(self, data: JSONBody[ApiKeyCreate], principal: Caller, db_session: DbSession) -> ApiKeyCreated:
        """Create an API key for an organisation; the key is shown only in this response."""
        row, key = await AccountService(db_session).create_api_key(principal, data)
        return ApiKeyCreated.model_validate({**row.model_dump(), "key": key})

    @get("/", responses=problem_responses(401, 403, 404))
    async def list_keys(
        self,
        organization_id: Annotated[uuid.UUID, QueryParameter()],
        principal: Caller,
        db_session: DbSession,
    ) -> list[ApiKeyRead]:
        return [
            ApiKeyRead.model_validate(r) for r in await AccountService(db_session).api_keys(principal, organization_id)
        ]

    @delete("/{key_id:uuid}", responses=problem_responses(401, 403, 404))
    async def revoke(self, key_id: FromPath[uuid.UUID], principal: Caller, db_session: DbSession) -> None:
        """Revoke a key; it stops working at once."""
        await AccountService(db_session).revoke_api_key(principal, key_id)


class AdminAccountsController(Controller):
    path = "/api/v1/admin"
    tags = ["administration"]
    dependencies = {**ADMIN_ONLY, **PAGED}
    security = SECURITY

    @get("/organizations", responses=problem_responses(401, 403))
    async def organizations(
        self,
        admin: Caller,
        db_session: DbSession,
        page: Paging,
        status: Annotated[OrganizationStatus | None, QueryParameter()] = None,
    ) -> Page[OrganizationRead]:
        rows, total = await AccountService(db_session).list_organizations(
            status=status, limit=page.limit, offset=page.offset
        )
        return Page(items=[organization_read(r) for r in rows], total=total, limit=page.limit, offset=page.offset)

    @post(
        "/organizations/{organization_id:uuid}/decision",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
    )
    async def decide(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionRequest],
        admin: Caller,
        db_session: DbSession,
    ) -> OrganizationRead:
        """Admit or reject an organisation under review."""
        organization = await AccountService(db_session).decide_admission(
            admin, organization_id, data.decision, data.reason
        )
        return organization_read(organization)

    @post(
        "/organizations/{organization_id:uuid}/standing",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
    )
    async def change_standing(
        self,
        organization_id: FromPath[uuid.UUID],
        data: JSONBody[StandingRequest],
        admin: Caller,
        db_session: DbSession,
    ) -> OrganizationRead:
        """Suspend an admitted organisation, or reinstate a suspended one."""
        organization = await AccountService(db_session).change_standing(
            admin, organization_id, data.standing, data.reason
        )
        return organization_read(organization)

    @get("/users", responses=problem_responses(401, 403))
    async def users(self, admin: Caller, db_session: DbSession, page: Paging) -> Page[UserAdminRead]:
        rows, total = await AccountService(db_session).list_users(limit=page.limit, offset=page.offset)
        return Page(items=[_user_admin_read(r) for r in rows], total=total, limit=page.limit, offset=page.offset)

    @post("/users/{user_id:uuid}/status", status_code=200, responses=problem_responses(401, 403, 404, 409))
    async def user_status(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[UserStatusChange],
        admin: Caller,
        db_session: DbSession,
    ) -> UserAdminRead:
        """Disable or re-enable an account; a disabled account's tokens stop working at once."""
        user = await AccountService(db_session).change_user_status(admin, user_id, data.status, data.reason)
        return _user_admin_read(user)


def _user_admin_read(user: User) -> UserAdminRead:
    return UserAdminRead.model_validate(user)

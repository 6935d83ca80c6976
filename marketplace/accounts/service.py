"""Account use cases: registration, login, organisations, memberships, API keys."""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import credentials
from marketplace.accounts.models import (
    MANAGING_ROLES,
    ApiKey,
    LoginFailure,
    Membership,
    Organization,
    OrganizationKind,
    OrganizationStatus,
    Role,
    User,
    UserStatus,
)
from marketplace.accounts.principal import Principal
from marketplace.accounts.repository import AccountRepository
from marketplace.accounts.schemas import (
    ApiKeyCreate,
    MembershipCreate,
    OrganizationCreate,
    OrganizationUpdate,
    RegisterRequest,
)
from marketplace.accounts.tokens import IssuedToken, TokenKeyring
from marketplace.audit.service import AuditService
from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.models import StoredVerdict
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.service import ComplianceService
from marketplace.compliance.snapshots import OrganizationFacts, Snapshot
from marketplace.config import Settings
from marketplace.db import SessionMaker, unit_of_work
from marketplace.errors import Conflict, Forbidden, NotAuthenticated, NotFound, TooManyRequests, Unprocessable
from marketplace.kit import clock

# An API key's last use is written at most this often, to keep writes off the read path.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
EDITABLE_STATUSES = frozenset({OrganizationStatus.PENDING, OrganizationStatus.REJECTED})


@dataclass(frozen=True)
class LoginPolicy:
    window_seconds: int
    max_per_account: int
    max_per_address: int


class AuthService:
    """Login with throttling, and resolving a bearer credential to a principal."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        keyring: TokenKeyring,
        sessions: SessionMaker,
        secret_key: bytes,
        policy: LoginPolicy,
    ) -> None:
        self.session = session
        self.repository = AccountRepository(session)
        self.keyring = keyring
        self.sessions = sessions
        self.secret_key = secret_key
        self.policy = policy

    @classmethod
    def from_state(cls, session: AsyncSession, state: State) -> AuthService:
        settings: Settings = state.settings
        return cls(
            session,
            keyring=state.token_keyring,
            sessions=state.db_sessions,
            secret_key=state.secret_key,
            policy=LoginPolicy(
                window_seconds=settings.login_failure_window_seconds,
                max_per_account=settings.login_max_failures_per_account,
                max_per_address=settings.login_max_failures_per_address,
            ),
        )

    def _subject(self, kind: str, value: str) -> str:
        return hmac.new(self.secret_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    async def login(self, email: str, password: str, address: str) -> IssuedToken:
        now = clock.now()
        since = now - timedelta(seconds=self.policy.window_seconds)
        account = self._subject("account", email)
        client = self._subject("address", address)
        for subject, limit in ((account, self.policy.max_per_account), (client, self.policy.max_per_address)):
            count, oldest = await self.repository.login_failures_since(subject, since)
            if count >= limit and oldest is not None:
                wait = self.policy.window_seconds - (now - oldest).total_seconds()
                raise TooManyRequests("too many failed logins; try again later", retry_after=max(1, math.ceil(wait)))
        user = await self.repository.user_by_email(email)
        password_ok = credentials.verify_password(user.password_hash if user else None, password)
        if user is None or not password_ok or user.status != UserStatus.ACTIVE:
            await self._record_failure((account, client), now, since)
            raise NotAuthenticated("unknown e-mail or wrong password")
        await self.repository.forget_login_failures(account)
        return self.keyring.issue(user.id)

    async def _record_failure(self, subjects: tuple[str, ...], now: datetime, since: datetime) -> None:
        """In a transaction of its own: the request's transaction rolls back with the 401."""
        async with unit_of_work(self.sessions) as session:
            repository = AccountRepository(session)
            for subject in subjects:
                await repository.forget_login_failures(subject, before=since)
                session.add(LoginFailure(subject=subject, at=now))

    async def authenticate(self, credential: str) -> Principal:
        if credentials.looks_like_api_key(credential):
            return await self._authenticate_api_key(credential)
        user_id = self.keyring.verify(credential)
        standing = await self.repository.user_standing(user_id)
        if standing is None or standing[1] != UserStatus.ACTIVE:
            raise NotAuthenticated("account is not active")
        return Principal(user_id=user_id, is_admin=standing[0])

    async def _authenticate_api_key(self, key: str) -> Principal:
        prefix = credentials.api_key_prefix(key)
        # one query: the key and its organisation, which stays in the session for the request's own use
        found = await self.repository.api_key_with_organization(prefix) if prefix else None
        if found is None or not credentials.same_digest(found[0].secret_hash, credentials.hash_api_key(key)):
            raise NotAuthenticated("invalid API key")
        row, organization = found
        now = clock.now()
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            raise NotAuthenticated("API key revoked or expired")
        if organization.status == OrganizationStatus.SUSPENDED:
            raise NotAuthenticated("the key's organisation is suspended")
        if row.last_used_at is None or now - row.last_used_at > API_KEY_TOUCH_INTERVAL:
            row.last_used_at = now
            await self.repository.flush()
        return Principal(
            user_id=None,
            api_key_id=row.id,
            key_organization_id=row.organization_id,
            scopes=frozenset(row.scopes_enum()),
        )


class AccountService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = AccountRepository(session)
        self.audit = AuditService(session)

    # users

    async def register(self, data: RegisterRequest) -> User:
        if await self.repository.user_by_email(data.email) is not None:
            raise Conflict("an account with this e-mail already exists")
        user = User(email=data.email, name=data.name, password_hash=credentials.hash_password(data.password))
        await self.repository.add(user, conflict="an account with this e-mail already exists")
        await self.audit.record(
            actor=f"user:{user.id}",
            action="user.registered",
            object_type="user",
            object_id=user.id,
            payload={},
        )
        return user

    async def create_admin(self, *, email: str, password: str, name: str, actor: str) -> User:
        """The command line's way in; promotes an existing account rather than failing."""
        user = await self.repository.user_by_email(email)
        if user is None:
            user = User(email=email, name=name, password_hash=credentials.hash_password(password), is_admin=True)
            await self.repository.add(user, conflict="an account with this e-mail already exists")
        else:
            user.is_admin = True
            user.password_hash = credentials.hash_password(password)
            user.updated_at = clock.now()
            await self.repository.flush()
        await self.audit.record(
            actor=actor, action="user.made_admin", object_type="user", object_id=user.id, payload={}
        )
        return user

    async def me(self, principal: Principal) -> tuple[User, Sequence[Membership]]:
        user = await self.repository.get_user(principal.require_person())
        if user is None:
            raise NotFound("user not found")
        return user, await self.repository.memberships_of_user(user.id)

    async def delete_me(self, principal: Principal) -> None:
        user = await self.repository.get_user(principal.require_person())
        if user is None:
            raise NotFound("user not found")
        for membership in await self.repository.memberships_of_user(user.id):
            if membership.role == Role.OWNER and await self.repository.count_owners(membership.organization_id) == 1:
                raise Conflict("you are the last owner of an organisation; transfer ownership first")
        await self._set_user_status(user, UserStatus.DELETED, actor=principal.actor, reason="deleted by its user")

    async def list_users(self, *, limit: int, offset: int) -> tuple[Sequence[User], int]:
        return await self.repository.list_users(limit=limit, offset=offset)

    async def change_user_status(self, principal: Principal, user_id: uuid.UUID, status: str, reason: str) -> User:
        user = await self.repository.get_user(user_id)
        if user is None or user.status == UserStatus.DELETED:
            raise NotFound("user not found")
        if user.id == principal.user_id:
            raise Conflict("administrators cannot change their own status")
        await self._set_user_status(user, UserStatus(status), actor=principal.actor, reason=reason)
        return user

    async def _set_user_status(self, user: User, status: UserStatus, *, actor: str, reason: str) -> None:
        previous = user.status
        user.status = status
        user.updated_at = clock.now()
        await self.repository.flush()
        await self.audit.record(
            actor=actor,
            action="user.status_changed",
            object_type="user",
            object_id=user.id,
            payload={"from": previous.value, "to": status.value, "reason": reason},
        )

    # organisations

    async def create_organization(self, principal: Principal, data: OrganizationCreate) -> Organization:
        user_id = principal.require_person()
        organization = Organization(
            **data.model_dump(exclude={"intermediary"}),
            intermediary=data.intermediary.model_dump() if data.intermediary else None,
        )
        await self.repository.add(organization, conflict="an organisation with this USCC is already registered")
        await self.repository.add(Membership(user_id=user_id, organization_id=organization.id, role=Role.OWNER))
        await self.audit.record(
            actor=principal.actor,
            action="organization.created",
            object_type="organization",
            object_id=organization.id,
            payload=_organization_facts(organization),
        )
        return organization

    async def visible_organization(self, principal: Principal, organization_id: uuid.UUID) -> Organization:
        """The organisation if the caller may see it; otherwise it does not exist for them."""
        organization = await self.repository.get_organization(organization_id)
        if organization is None or not await self._can_see(principal, organization_id):
            raise NotFound("organisation not found")
        return organization

    async def _can_see(self, principal: Principal, organization_id: uuid.UUID) -> bool:
        if principal.is_admin:
            return True
        if principal.is_api_key:
            return principal.key_organization_id == organization_id
        assert principal.user_id is not None
        return await self.repository.membership(principal.user_id, organization_id) is not None

    async def _require_manager(self, principal: Principal, organization_id: uuid.UUID) -> Organization:
        organization = await self.visible_organization(principal, organization_id)
        user_id = principal.require_person()
        membership = await self.repository.membership(user_id, organization_id)
        if membership is None or membership.role not in MANAGING_ROLES:
            raise Forbidden("only the organisation's owners and admins may do this")
        return organization

    async def acting_for(self, principal: Principal, organization_id: uuid.UUID) -> Organization:
        """The organisation if the caller acts for it: an administrator for any, an API key for its own,
        a person for those they are a member of; otherwise it does not exist for them. The same answer as
        `visible_organization` followed by `member_role`, in one query at most (a key's organisation was
        read with the key)."""
        if principal.is_api_key and principal.key_organization_id != organization_id:
            raise NotFound("organisation not found")
        if principal.is_admin or principal.is_api_key:
            organization = await self.repository.get_organization(organization_id)
        else:
            assert principal.user_id is not None
            organization = await self.repository.organization_of_member(principal.user_id, organization_id)
        if organization is None:
            raise NotFound("organisation not found")
        return organization

    async def member_role(self, principal: Principal, organization_id: uuid.UUID) -> Role | None:
        """The caller's role in an organisation it may act for (an API key acts as a member)."""
        if principal.is_api_key:
            return Role.MEMBER if principal.key_organization_id == organization_id else None
        assert principal.user_id is not None
        membership = await self.repository.membership(principal.user_id, organization_id)
        return membership.role if membership else None

    async def member_organization_ids(self, principal: Principal) -> list[uuid.UUID]:
        """The organisations the caller acts for: a person's memberships, or an API key's organisation."""
        if principal.is_api_key:
            assert principal.key_organization_id is not None
            return [principal.key_organization_id]
        assert principal.user_id is not None
        return [m.organization_id for m in await self.repository.memberships_of_user(principal.user_id)]

    async def is_active_member(self, user_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
        """Whether this person's account is active and a member of the organisation now (a signed link
        made for them stops working once they leave it or are disabled)."""
        user = await self.repository.get_user(user_id)
        if user is None or user.status != UserStatus.ACTIVE:
            return False
        return await self.repository.membership(user_id, organization_id) is not None

    async def my_organizations(
        self, principal: Principal, *, limit: int, offset: int
    ) -> tuple[Sequence[Organization], int]:
        if principal.is_api_key:
            assert principal.key_organization_id is not None
            organization = await self.repository.get_organization(principal.key_organization_id)
            items = [organization] if organization else []
            return items[offset : offset + limit], len(items)
        assert principal.user_id is not None
        return await self.repository.organizations_of_user(principal.user_id, limit=limit, offset=offset)

    async def update_organization(
        self, principal: Principal, organization_id: uuid.UUID, data: OrganizationUpdate
    ) -> Organization:
        await self._require_manager(principal, organization_id)
        organization = await self.repository.lock_organization(organization_id)
        assert organization is not None
        if organization.status not in EDITABLE_STATUSES:
            raise Conflict(f"an organisation that is {organization.status.value} cannot change its qualification")
        changes = data.model_dump(exclude_unset=True)
        if "intermediary" in changes:
            changes["intermediary"] = data.intermediary.model_dump() if data.intermediary else None
        for field, value in changes.items():
            setattr(organization, field, value)
        organization.updated_at = clock.now()
        await self.repository.flush()
        await self.audit.record(
            actor=principal.actor,
            action="organization.updated",
            object_type="organization",
            object_id=organization.id,
            payload={"fields": sorted(changes)},
        )
        return organization

    async def request_admission(
        self, principal: Principal, organization_id: uuid.UUID, rulebook: Rulebook
    ) -> tuple[Organization, StoredVerdict]:
        """The rulebook's admission stage decides first: admitted, rejected with findings, or
        held for an administrator."""
        await self._require_manager(principal, organization_id)
        organization = await self.repository.lock_organization(organization_id)
        assert organization is not None
        if organization.status not in EDITABLE_STATUSES:
            raise Conflict(f"an organisation that is {organization.status.value} cannot request admission")
        stored, verdict = await ComplianceService(self.session, rulebook).judge(
            stage=Stage.ADMISSION,
            subject_type="organization",
            subject_id=organization.id,
            snapshot=Snapshot(organization=organization_facts(organization)),
            actor=principal.actor,
        )
        status = ADMISSION_STATUS[verdict.decision]
        reason = "; ".join(f.check for f in verdict.failures()) or None
        await self._set_organization_status(organization, status, actor=principal.actor, reason=reason)
        return organization, stored

    async def decide_admission(
        self, principal: Principal, organization_id: uuid.UUID, decision: str, reason: str
    ) -> Organization:
        organization = await self.repository.lock_organization(organization_id)
        if organization is None:
            raise NotFound("organisation not found")
        if organization.status not in {OrganizationStatus.UNDER_REVIEW, OrganizationStatus.PENDING}:
            raise Conflict(f"an organisation that is {organization.status.value} has no admission to decide")
        target = OrganizationStatus.ADMITTED if decision == "approve" else OrganizationStatus.REJECTED
        await self._set_organization_status(organization, target, actor=principal.actor, reason=reason)
        return organization

    async def change_standing(
        self, principal: Principal, organization_id: uuid.UUID, standing: str, reason: str
    ) -> Organization:
        """An administrator suspends an admitted organisation (it can neither trade nor deliver while
        suspended: R7 and S6 check its status) or reinstates a suspended one."""
        if not principal.is_admin or principal.is_api_key:
            raise Forbidden("platform administrators only")
        organization = await self.repository.lock_organization(organization_id)
        if organization is None:
            raise NotFound("organisation not found")
        was = OrganizationStatus.ADMITTED if standing == "suspended" else OrganizationStatus.SUSPENDED
        if organization.status != was:
            raise Conflict(f"an organisation that is {organization.status.value} cannot become {standing}")
        await self._set_organization_status(
            organization, OrganizationStatus(standing), actor=principal.actor, reason=reason
        )
        return organization

    async def _set_organization_status(
        self, organization: Organization, status: OrganizationStatus, *, actor: str, reason: str | None
    ) -> None:
        previous = organization.status
        organization.status = status
        organization.decision_reason = reason
        organization.updated_at = clock.now()
        if status == OrganizationStatus.ADMITTED:
            organization.admitted_at = organization.updated_at
        await self.repository.flush()
        await self.audit.record(
            actor=actor,
            action="organization.status_changed",
            object_type="organization",
            object_id=organization.id,
            payload={"from": previous.value, "to": status.value, "reason": reason},
        )

    async def list_organizations(
        self, *, status: OrganizationStatus | None, limit: int, offset: int
    ) -> tuple[Sequence[Organization], int]:
        return await self.repository.list_organizations(status=status, limit=limit, offset=offset)

    async def organization(self, organization_id: uuid.UUID) -> Organization:
        """For other domains' services, which have already checked who may see it."""
        organization = await self.repository.get_organization(organization_id)
        if organization is None:
            raise NotFound("organisation not found")
        return organization

    async def is_admitted_assessor(self, organization_id: uuid.UUID) -> bool:
        """An admitted intermediary that declared the assessor role (R8)."""
        organization = await self.repository.get_organization(organization_id)
        return (
            organization is not None
            and organization.status == OrganizationStatus.ADMITTED
            and organization.kind == OrganizationKind.INTERMEDIARY
            and "assessor" in (organization.intermediary or {}).get("roles", ())
        )

    async def admitted_organization_ids(self) -> Sequence[uuid.UUID]:
        return await self.repository.organization_ids_with_status(OrganizationStatus.ADMITTED)

    # memberships

    async def members(self, principal: Principal, organization_id: uuid.UUID) -> Sequence[Membership]:
        await self.visible_organization(principal, organization_id)
        principal.require_person()
        return await self.repository.members_of(organization_id)

    async def add_member(self, principal: Principal, organization_id: uuid.UUID, data: MembershipCreate) -> Membership:
        await self._require_manager(principal, organization_id)
        await self._require_owner_for(principal, organization_id, data.role)
        user = await self.repository.user_by_email(data.email)
        if user is None or user.status != UserStatus.ACTIVE:
            raise Unprocessable("no active account has this e-mail; ask the person to register first")
        membership = Membership(user_id=user.id, organization_id=organization_id, role=data.role)
        await self.repository.add(membership, conflict="this person is already a member")
        await self.audit.record(
            actor=principal.actor,
            action="membership.created",
            object_type="membership",
            object_id=membership.id,
            payload={
                "organization_id": str(organization_id),
                "user_id": str(user.id),
                "role": data.role.value,
            },
        )
        return membership

    async def _membership_in(
        self, principal: Principal, organization_id: uuid.UUID, membership_id: uuid.UUID
    ) -> Membership:
        await self._require_manager(principal, organization_id)
        membership = await self.repository.get_membership(membership_id)
        if membership is None or membership.organization_id != organization_id:
            raise NotFound("membership not found")
        return membership

    async def _require_owner_for(self, principal: Principal, organization_id: uuid.UUID, role: Role) -> None:
        """Only owners hand out or take away ownership."""
        if role == Role.OWNER and await self.member_role(principal, organization_id) != Role.OWNER:
            raise Forbidden("only an owner may grant or change the owner role")

    async def change_member_role(
        self, principal: Principal, organization_id: uuid.UUID, membership_id: uuid.UUID, role: Role
    ) -> Membership:
        membership = await self._membership_in(principal, organization_id, membership_id)
        await self._require_owner_for(principal, organization_id, membership.role)
        await self._require_owner_for(principal, organization_id, role)
        await self._keep_an_owner(membership, new_role=role)
        previous = membership.role
        membership.role = role
        await self.repository.flush()
        await self.audit.record(
            actor=principal.actor,
            action="membership.role_changed",
            object_type="membership",
            object_id=membership.id,
            payload={"organization_id": str(organization_id), "from": previous.value, "to": role.value},
        )
        return membership

    async def remove_member(self, principal: Principal, organization_id: uuid.UUID, membership_id: uuid.UUID) -> None:
        membership = await self._membership_in(principal, organization_id, membership_id)
        await self._require_owner_for(principal, organization_id, membership.role)
        await self._keep_an_owner(membership, new_role=None)
        await self.repository.delete(membership)
        await self.audit.record(
            actor=principal.actor,
            action="membership.deleted",
            object_type="membership",
            object_id=membership.id,
            payload={"organization_id": str(organization_id), "user_id": str(membership.user_id)},
        )

    async def _keep_an_owner(self, membership: Membership, new_role: Role | None) -> None:
        await self.repository.lock_organization(membership.organization_id)
        losing_an_owner = membership.role == Role.OWNER and new_role != Role.OWNER
        if losing_an_owner and await self.repository.count_owners(membership.organization_id) <= 1:
            raise Conflict("an organisation keeps at least one owner")

    # API keys

    async def create_api_key(self, principal: Principal, data: ApiKeyCreate) -> tuple[ApiKey, str]:
        await self._require_manager(principal, data.organization_id)
        key, prefix = credentials.new_api_key()
        row = ApiKey(
            organization_id=data.organization_id,
            created_by=principal.require_person(),
            name=data.name,
            prefix=prefix,
            secret_hash=credentials.hash_api_key(key),
            scopes=sorted(scope.value for scope in data.scopes),
            expires_at=clock.now() + timedelta(days=data.expires_in_days),
        )
        await self.repository.add(row)
        await self.audit.record(
            actor=principal.actor,
            action="api_key.created",
            object_type="api_key",
            object_id=row.id,
            payload={"organization_id": str(row.organization_id), "prefix": prefix, "scopes": row.scopes},
        )
        return row, key

    async def api_keys(self, principal: Principal, organization_id: uuid.UUID) -> Sequence[ApiKey]:
        await self._require_manager(principal, organization_id)
        return await self.repository.api_keys_of(organization_id)

    async def revoke_api_key(self, principal: Principal, key_id: uuid.UUID) -> ApiKey:
        row = await self.repository.get_api_key(key_id)
        if row is None or not await self._can_see(principal, row.organization_id):
            raise NotFound("API key not found")
        await self._require_manager(principal, row.organization_id)
        if row.revoked_at is None:
            row.revoked_at = clock.now()
            await self.repository.flush()
            await self.audit.record(
                actor=principal.actor,
                action="api_key.revoked",
                object_type="api_key",
                object_id=row.id,
                payload={"organization_id": str(row.organization_id)},
            )
        return row


ADMISSION_STATUS = {
    Decision.ACCEPTED: OrganizationStatus.ADMITTED,
    Decision.REVIEW: OrganizationStatus.UNDER_REVIEW,
    Decision.REJECTED: OrganizationStatus.REJECTED,
}


def organization_facts(organization: Organization) -> OrganizationFacts:
    """What the rulebook sees of an organisation."""
    intermediary = organization.intermediary or {}
    return OrganizationFacts(
        id=str(organization.id),
        name=organization.name,
        kind=organization.kind.value,
        uscc=organization.uscc,
        jurisdiction=organization.jurisdiction,
        status=organization.status.value,
        dsmm_level=organization.dsmm_level,
        max_data_grade=organization.max_data_grade.value,
        penalties_last_3y=organization.penalties_last_3y,
        last_penalty_on=organization.last_penalty_on,
        security_certifications=tuple(organization.security_certifications),
        intermediary_roles=tuple(intermediary.get("roles", ())),
        fee_disclosure=intermediary.get("fee_disclosure"),
        retains_no_traded_data=intermediary.get("retains_no_traded_data"),
    )


def _organization_facts(organization: Organization) -> dict[str, Any]:
    """What the audit log keeps of an organisation: no personal data (it cannot be erased there)."""
    return {
        "name": organization.name,
        "uscc": organization.uscc,
        "kind": organization.kind.value,
        "jurisdiction": organization.jurisdiction,
        "dsmm_level": organization.dsmm_level,
        "penalties_last_3y": organization.penalties_last_3y,
    }

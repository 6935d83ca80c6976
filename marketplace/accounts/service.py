"""Account use cases: people and organisations (registration, qualification, admission status, standing)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import credentials
from marketplace.accounts.models import (
    MANAGING_ROLES,
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
from marketplace.accounts.schemas import OrganizationCreate, OrganizationUpdate, RegisterRequest
from marketplace.audit.service import AuditService
from marketplace.db import table_of
from marketplace.errors import Conflict, FieldsRequired, Forbidden, NotFound
from marketplace.events.models import EventType
from marketplace.events.service import EventService
from marketplace.kit import clock
from marketplace.kit.i18n import Message

EDITABLE_STATUSES = frozenset({OrganizationStatus.PENDING, OrganizationStatus.REJECTED})
# Qualification an organisation cannot do without (NOT NULL columns): a PATCH may change them, never null them.
REQUIRED_FIELDS = frozenset(column.name for column in table_of(Organization).columns if not column.nullable)


class AccountService:
    def __init__(self, session: AsyncSession, audit: AuditService, events: EventService) -> None:
        self.repository = AccountRepository(session)
        self.audit = audit
        self.events = events

    # users

    async def register(self, data: RegisterRequest) -> User:
        if await self.repository.user_by_email(data.email) is not None:
            raise Conflict(EMAIL_TAKEN)
        user = User(email=data.email, name=data.name, password_hash=await credentials.hash_password(data.password))
        await self.repository.add(user, conflict=EMAIL_TAKEN)
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
            user = User(email=email, name=name, password_hash=await credentials.hash_password(password), is_admin=True)
            await self.repository.add(user, conflict=EMAIL_TAKEN)
        else:
            user.is_admin = True
            user.password_hash = await credentials.hash_password(password)
            user.updated_at = clock.now()
            await self.repository.flush()
        await self.audit.record(
            actor=actor, action="user.made_admin", object_type="user", object_id=user.id, payload={}
        )
        return user

    async def me(self, principal: Principal) -> tuple[User, Sequence[Membership]]:
        user = await self.repository.get_user(principal.require_person())
        if user is None:
            raise NotFound(Message("accounts.user-not-found", "user not found"))
        return user, await self.repository.memberships_of_user(user.id)

    async def delete_me(self, principal: Principal) -> None:
        user = await self.repository.get_user(principal.require_person())
        if user is None:
            raise NotFound(Message("accounts.user-not-found", "user not found"))
        for membership in await self.repository.memberships_of_user(user.id):
            if membership.role == Role.OWNER and await self.repository.count_owners(membership.organization_id) == 1:
                raise Conflict(LAST_OWNER_LEAVING)
        await self._set_user_status(user, UserStatus.DELETED, actor=principal.actor, reason="deleted by its user")

    async def list_users(self, *, limit: int, offset: int) -> tuple[Sequence[User], int]:
        return await self.repository.list_users(limit=limit, offset=offset)

    async def change_user_status(self, principal: Principal, user_id: uuid.UUID, status: str, reason: str) -> User:
        user = await self.repository.get_user(user_id)
        if user is None or user.status == UserStatus.DELETED:
            raise NotFound(Message("accounts.user-not-found", "user not found"))
        if user.id == principal.user_id:
            raise Conflict(Message("accounts.own-status", "administrators cannot change their own status"))
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
        await self.repository.add(organization, conflict=USCC_TAKEN)
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
        if organization is None or not await self.can_see(principal, organization_id):
            raise NotFound(Message("accounts.organisation-not-found", "organisation not found"))
        return organization

    async def can_see(self, principal: Principal, organization_id: uuid.UUID) -> bool:
        if principal.is_admin:
            return True
        if principal.is_api_key:
            return principal.key_organization_id == organization_id
        assert principal.user_id is not None
        return await self.repository.membership(principal.user_id, organization_id) is not None

    async def require_manager(self, principal: Principal, organization_id: uuid.UUID) -> Organization:
        organization = await self.visible_organization(principal, organization_id)
        user_id = principal.require_person()
        membership = await self.repository.membership(user_id, organization_id)
        if membership is None or membership.role not in MANAGING_ROLES:
            raise Forbidden(Message("accounts.managers-only", "only the organisation's owners and admins may do this"))
        return organization

    async def acting_for(self, principal: Principal, organization_id: uuid.UUID) -> Organization:
        """The organisation if the caller acts for it: an administrator for any, an API key for its own,
        a person for those they are a member of; otherwise it does not exist for them. The same answer as
        `visible_organization` followed by `member_role`, in one query at most (a key's organisation was
        read with the key)."""
        if principal.is_api_key and principal.key_organization_id != organization_id:
            raise NotFound(Message("accounts.organisation-not-found", "organisation not found"))
        if principal.is_admin or principal.is_api_key:
            organization = await self.repository.get_organization(organization_id)
        else:
            assert principal.user_id is not None
            organization = await self.repository.organization_of_member(principal.user_id, organization_id)
        if organization is None:
            raise NotFound(Message("accounts.organisation-not-found", "organisation not found"))
        return organization

    async def member_role(self, principal: Principal, organization_id: uuid.UUID) -> Role | None:
        """The caller's role in an organisation it may act for (an API key acts as a member)."""
        if principal.is_api_key:
            return Role.MEMBER if principal.key_organization_id == organization_id else None
        if principal.user_id is None:  # a visitor acts for nobody
            return None
        membership = await self.repository.membership(principal.user_id, organization_id)
        return membership.role if membership else None

    async def member_organization_ids(self, principal: Principal) -> list[uuid.UUID]:
        """The organisations the caller acts for: a person's memberships, or an API key's organisation."""
        if principal.is_api_key:
            assert principal.key_organization_id is not None
            return [principal.key_organization_id]
        if principal.user_id is None:  # a visitor acts for nobody
            return []
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
        await self.require_manager(principal, organization_id)
        organization = await self.repository.lock_organization(organization_id)
        assert organization is not None
        if organization.status not in EDITABLE_STATUSES:
            raise Conflict(_qualification_frozen(organization.status))
        changes = data.model_dump(exclude_unset=True)
        if removed := sorted(field for field, value in changes.items() if value is None and field in REQUIRED_FIELDS):
            raise FieldsRequired(removed)
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

    async def admission_candidate(self, principal: Principal, organization_id: uuid.UUID) -> Organization:
        """The organisation, locked, when its managers may ask for admission now."""
        await self.require_manager(principal, organization_id)
        organization = await self.repository.lock_organization(organization_id)
        assert organization is not None
        if organization.status not in EDITABLE_STATUSES:
            raise Conflict(_admission_not_requestable(organization.status))
        return organization

    async def record_admission(
        self, organization: Organization, status: OrganizationStatus, actor: str, reason: str | None
    ) -> None:
        """What the admission stage decided: admitted, rejected, or held for an administrator."""
        await self._set_organization_status(organization, status, actor=actor, reason=reason)

    async def decide_admission(
        self, principal: Principal, organization_id: uuid.UUID, decision: str, reason: str
    ) -> Organization:
        organization = await self.repository.lock_organization(organization_id)
        if organization is None:
            raise NotFound(Message("accounts.organisation-not-found", "organisation not found"))
        # Only what the admission stage held for review: an organisation the rules never judged (pending) is
        # not admitted by hand.
        if organization.status != OrganizationStatus.UNDER_REVIEW:
            raise Conflict(_admission_not_pending(organization.status))
        target = OrganizationStatus.ADMITTED if decision == "approve" else OrganizationStatus.REJECTED
        await self._set_organization_status(organization, target, actor=principal.actor, reason=reason)
        return organization

    async def change_standing(
        self, principal: Principal, organization_id: uuid.UUID, standing: str, reason: str
    ) -> Organization:
        """An administrator suspends an admitted organisation (it can neither trade nor deliver while
        suspended: R7 and S6 check its status) or reinstates a suspended one."""
        if not principal.is_admin or principal.is_api_key:
            raise Forbidden(Message("auth.administrators-only", "platform administrators only"))
        organization = await self.repository.lock_organization(organization_id)
        if organization is None:
            raise NotFound(Message("accounts.organisation-not-found", "organisation not found"))
        was = OrganizationStatus.ADMITTED if standing == "suspended" else OrganizationStatus.SUSPENDED
        if organization.status != was:
            raise Conflict(_standing_unchanged(organization.status, standing))
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
        await self.events.record(
            _organization_event(previous, status),
            subject_type="organization",
            subject_id=organization.id,
            parties=[organization.id],
            payload={
                "organization_id": str(organization.id),
                "kind": organization.kind.value,
                "status": status.value,
                "previous_status": previous.value,
            },
        )

    async def list_organizations(
        self, *, status: OrganizationStatus | None, limit: int, offset: int
    ) -> tuple[Sequence[Organization], int]:
        return await self.repository.list_organizations(status=status, limit=limit, offset=offset)

    async def organization(self, organization_id: uuid.UUID) -> Organization:
        """For other domains' services, which have already checked who may see it."""
        organization = await self.repository.get_organization(organization_id)
        if organization is None:
            raise NotFound(Message("accounts.organisation-not-found", "organisation not found"))
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


EMAIL_TAKEN = Message("accounts.email-taken", "an account with this e-mail already exists")
USCC_TAKEN = Message("accounts.uscc-taken", "an organisation with this USCC is already registered")
LAST_OWNER_LEAVING = Message(
    "accounts.last-owner-leaving", "you are the last owner of an organisation; transfer ownership first"
)


def _qualification_frozen(status: OrganizationStatus) -> Message:
    return Message(
        "accounts.qualification-frozen",
        "an organisation that is {status} cannot change its qualification",
        status=status.value,
    )


def _admission_not_requestable(status: OrganizationStatus) -> Message:
    return Message(
        "accounts.admission-not-requestable",
        "an organisation that is {status} cannot request admission",
        status=status.value,
    )


def _admission_not_pending(status: OrganizationStatus) -> Message:
    return Message(
        "accounts.admission-not-pending",
        "an organisation that is {status} has no admission to decide",
        status=status.value,
    )


def _standing_unchanged(status: OrganizationStatus, standing: str) -> Message:
    return Message(
        "accounts.standing-unchanged",
        "an organisation that is {status} cannot become {standing}",
        status=status.value,
        standing=standing,
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


def _organization_event(previous: OrganizationStatus, status: OrganizationStatus) -> EventType:
    """The event of an organisation's move: admission held, decided, its standing changed."""
    if status == OrganizationStatus.ADMITTED and previous == OrganizationStatus.SUSPENDED:
        return EventType.ORGANIZATION_REINSTATED
    return {
        OrganizationStatus.UNDER_REVIEW: EventType.ORGANIZATION_HELD,
        OrganizationStatus.ADMITTED: EventType.ORGANIZATION_ADMITTED,
        OrganizationStatus.REJECTED: EventType.ORGANIZATION_REJECTED,
        OrganizationStatus.SUSPENDED: EventType.ORGANIZATION_SUSPENDED,
    }[status]

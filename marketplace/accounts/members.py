"""Who acts for an organisation: its members and their roles, and its API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import credentials
from marketplace.accounts.models import ApiKey, Membership, Role, UserStatus
from marketplace.accounts.principal import Principal
from marketplace.accounts.repository import AccountRepository
from marketplace.accounts.schemas import ApiKeyCreate, MembershipCreate
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.errors import Conflict, Forbidden, NotFound, Unprocessable
from marketplace.kit import clock
from marketplace.kit.i18n import Message


class MembershipService:
    def __init__(self, session: AsyncSession, accounts: AccountService, audit: AuditService) -> None:
        self.repository = AccountRepository(session)
        self.accounts = accounts
        self.audit = audit

    # memberships

    async def members(self, principal: Principal, organization_id: uuid.UUID) -> Sequence[Membership]:
        await self.accounts.visible_organization(principal, organization_id)
        principal.require_person()
        return await self.repository.members_of(organization_id)

    async def add_member(self, principal: Principal, organization_id: uuid.UUID, data: MembershipCreate) -> Membership:
        await self.accounts.require_manager(principal, organization_id)
        await self._require_owner_for(principal, organization_id, data.role)
        user = await self.repository.user_by_email(data.email)
        if user is None or user.status != UserStatus.ACTIVE:
            raise Unprocessable(
                Message(
                    "accounts.member-not-registered",
                    "no active account has this e-mail; ask the person to register first",
                )
            )
        membership = Membership(user_id=user.id, organization_id=organization_id, role=data.role)
        await self.repository.add(
            membership, conflict=Message("accounts.member-exists", "this person is already a member")
        )
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
        await self.accounts.require_manager(principal, organization_id)
        membership = await self.repository.get_membership(membership_id)
        if membership is None or membership.organization_id != organization_id:
            raise NotFound(Message("accounts.membership-not-found", "membership not found"))
        return membership

    async def _require_owner_for(self, principal: Principal, organization_id: uuid.UUID, role: Role) -> None:
        """Only owners hand out or take away ownership."""
        if role == Role.OWNER and await self.accounts.member_role(principal, organization_id) != Role.OWNER:
            raise Forbidden(Message("accounts.owner-role-by-owner", "only an owner may grant or change the owner role"))

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
            raise Conflict(Message("accounts.last-owner-kept", "an organisation keeps at least one owner"))

    # API keys

    async def create_api_key(self, principal: Principal, data: ApiKeyCreate) -> tuple[ApiKey, str]:
        await self.accounts.require_manager(principal, data.organization_id)
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
        await self.accounts.require_manager(principal, organization_id)
        return await self.repository.api_keys_of(organization_id)

    async def revoke_api_key(self, principal: Principal, key_id: uuid.UUID) -> ApiKey:
        row = await self.repository.get_api_key(key_id)
        if row is None or not await self.accounts.can_see(principal, row.organization_id):
            raise NotFound(Message("accounts.api-key-not-found", "API key not found"))
        await self.accounts.require_manager(principal, row.organization_id)
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

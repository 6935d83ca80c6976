"""Every query on the accounts tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from marketplace.accounts.models import (
    ApiKey,
    LoginFailure,
    Membership,
    Organization,
    OrganizationStatus,
    Role,
    User,
    UserStatus,
)
from marketplace.db import DriverStatement
from marketplace.errors import Conflict
from marketplace.kit.i18n import Message

# Where a session keeps objects of its request alive: see `api_key_with_organization`.
_KEPT = "marketplace.accounts.kept"
# Statements of the request path, built once (with bound parameters) rather than on every call.
_USER_STANDING = DriverStatement(
    select(col(User.is_admin), col(User.status)).where(col(User.id) == bindparam("user_id"))
)
_KEY_WITH_ORGANIZATION = (
    select(ApiKey, Organization)
    .join(Organization, col(Organization.id) == col(ApiKey.organization_id))
    .where(col(ApiKey.prefix) == bindparam("prefix"))
)
# An API key's last use, written only when the stored one is older than the cut-off: requests that race
# past the cut-off together write it once (the others find it fresh once the first commits).
_STAMP_API_KEY_USE = (
    update(ApiKey)
    .where(
        col(ApiKey.id) == bindparam("key_id"),
        or_(col(ApiKey.last_used_at).is_(None), col(ApiKey.last_used_at) < bindparam("stale_before")),
    )
    .values(last_used_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_ORGANIZATION_OF_MEMBER = (
    select(Organization)
    .join(
        Membership,
        and_(col(Membership.organization_id) == col(Organization.id), col(Membership.user_id) == bindparam("user_id")),
    )
    .where(col(Organization.id) == bindparam("organization_id"))
)


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: SQLModel, *, conflict: Message | None = None) -> None:
        """Insert now, so a unique violation surfaces here as a Conflict and not at commit."""
        self.session.add(row)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            if conflict is None:
                raise
            raise Conflict(conflict) from exc

    async def flush(self) -> None:
        await self.session.flush()

    async def delete(self, row: SQLModel) -> None:
        await self.session.delete(row)
        await self.session.flush()

    # users

    async def get_user(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def user_standing(self, user_id: uuid.UUID) -> tuple[bool, UserStatus] | None:
        """(is_admin, status) of a user: what every request made with a token checks, two columns."""
        rows = (await _USER_STANDING.execute(self.session, {"user_id": user_id})).rows
        return (bool(rows[0][0]), UserStatus(rows[0][1])) if rows else None

    async def user_by_email(self, email: str) -> User | None:
        return (await self.session.scalars(select(User).where(col(User.email) == email))).first()

    async def list_users(self, *, limit: int, offset: int) -> tuple[Sequence[User], int]:
        total = (await self.session.execute(select(func.count()).select_from(User))).scalar_one()
        rows = (
            await self.session.scalars(select(User).order_by(col(User.created_at)).limit(limit).offset(offset))
        ).all()
        return rows, int(total)

    # organisations

    async def get_organization(self, organization_id: uuid.UUID) -> Organization | None:
        return await self.session.get(Organization, organization_id)

    async def lock_organization(self, organization_id: uuid.UUID) -> Organization | None:
        """Read for a state change; the row lock serialises concurrent decisions (PostgreSQL)."""
        query = select(Organization).where(col(Organization.id) == organization_id).with_for_update()
        return (await self.session.scalars(query)).first()

    async def organizations_of_user(
        self, user_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[Organization], int]:
        query = (
            select(Organization)
            .join(Membership, col(Membership.organization_id) == col(Organization.id))
            .where(col(Membership.user_id) == user_id)
        )
        return await self._page(query, limit=limit, offset=offset)

    async def list_organizations(
        self, *, status: OrganizationStatus | None, limit: int, offset: int
    ) -> tuple[Sequence[Organization], int]:
        query = select(Organization)
        if status is not None:
            query = query.where(col(Organization.status) == status)
        return await self._page(query, limit=limit, offset=offset)

    async def _page(
        self, query: SelectOfScalar[Organization], *, limit: int, offset: int
    ) -> tuple[Sequence[Organization], int]:
        total = (await self.session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = (
            await self.session.scalars(query.order_by(col(Organization.created_at)).limit(limit).offset(offset))
        ).all()
        return rows, int(total)

    async def organization_ids_with_status(self, status: OrganizationStatus) -> Sequence[uuid.UUID]:
        query = select(col(Organization.id)).where(col(Organization.status) == status)
        return (await self.session.scalars(query)).all()

    # memberships

    async def memberships_of_user(self, user_id: uuid.UUID) -> Sequence[Membership]:
        query = select(Membership).where(col(Membership.user_id) == user_id).order_by(col(Membership.created_at))
        return (await self.session.scalars(query)).all()

    async def organization_of_member(self, user_id: uuid.UUID, organization_id: uuid.UUID) -> Organization | None:
        """The organisation if the user is one of its members, in one query."""
        result = await self.session.scalars(
            _ORGANIZATION_OF_MEMBER, {"user_id": user_id, "organization_id": organization_id}
        )
        return result.first()

    async def membership(self, user_id: uuid.UUID, organization_id: uuid.UUID) -> Membership | None:
        query = select(Membership).where(
            col(Membership.user_id) == user_id, col(Membership.organization_id) == organization_id
        )
        return (await self.session.scalars(query)).first()

    async def get_membership(self, membership_id: uuid.UUID) -> Membership | None:
        return await self.session.get(Membership, membership_id)

    async def members_of(self, organization_id: uuid.UUID) -> Sequence[Membership]:
        query = (
            select(Membership)
            .where(col(Membership.organization_id) == organization_id)
            .order_by(col(Membership.created_at))
        )
        return (await self.session.scalars(query)).all()

    async def count_owners(self, organization_id: uuid.UUID) -> int:
        query = select(func.count()).where(
            col(Membership.organization_id) == organization_id, col(Membership.role) == Role.OWNER
        )
        return int((await self.session.execute(query)).scalar_one())

    # API keys

    async def api_key_by_prefix(self, prefix: str) -> ApiKey | None:
        return (await self.session.scalars(select(ApiKey).where(col(ApiKey.prefix) == prefix))).first()

    async def api_key_with_organization(self, prefix: str) -> tuple[ApiKey, Organization] | None:
        """A key and its organisation in one round trip: every request made with a key reads both. The
        organisation is kept in the session (whose identity map holds objects weakly), so the request's
        own checks on the key's organisation (`get_organization`) find it there without a query."""
        row = (await self.session.execute(_KEY_WITH_ORGANIZATION, {"prefix": prefix})).first()
        if row is None:
            return None
        self.session.info.setdefault(_KEPT, []).append(row[1])
        return row[0], row[1]

    async def stamp_api_key_use(self, key_id: uuid.UUID, now: datetime, stale_before: datetime) -> None:
        await self.session.execute(_STAMP_API_KEY_USE, {"key_id": key_id, "now": now, "stale_before": stale_before})

    async def get_api_key(self, key_id: uuid.UUID) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def api_keys_of(self, organization_id: uuid.UUID) -> Sequence[ApiKey]:
        query = select(ApiKey).where(col(ApiKey.organization_id) == organization_id).order_by(col(ApiKey.created_at))
        return (await self.session.scalars(query)).all()

    # failed logins

    async def login_failures_since(self, subject: str, since: datetime) -> tuple[int, datetime | None]:
        query = select(func.count(), func.min(col(LoginFailure.at))).where(
            col(LoginFailure.subject) == subject, col(LoginFailure.at) > since
        )
        count, oldest = (await self.session.execute(query)).one()
        return int(count), oldest

    async def forget_login_failures(self, subject: str, before: datetime | None = None) -> None:
        statement = delete(LoginFailure).where(col(LoginFailure.subject) == subject)
        if before is not None:
            statement = statement.where(col(LoginFailure.at) <= before)
        await self.session.execute(statement)

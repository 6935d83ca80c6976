"""Browser sessions of the administrators' console: opened by a sign-in, ended by signing out, by idling or by
age. The cookie carries a random token; only its SHA-256 is stored, so a copy of the table opens nothing, and
ending a session deletes its row, so a copied cookie stops working at once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from marketplace.accounts.models import User, UserStatus
from marketplace.accounts.principal import Principal
from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.sqltypes import UTCDateTime

# A session's last use is written at most this often, to keep a write off most page views.
TOUCH_INTERVAL = timedelta(minutes=1)


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_session"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)


@dataclass(frozen=True)
class SessionPolicy:
    idle_seconds: int
    max_seconds: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    """Open, resolve and end console sessions."""

    def __init__(self, session: AsyncSession, policy: SessionPolicy) -> None:
        self.session = session
        self.policy = policy

    async def open(self, user_id: uuid.UUID) -> str:
        """A new session of `user_id` and the token its cookie carries; the user's ended sessions are forgotten."""
        now = clock.now()
        await self.session.execute(
            delete(ConsoleSession).where(col(ConsoleSession.user_id) == user_id, self._ended(now))
        )
        token = secrets.token_urlsafe(32)
        self.session.add(ConsoleSession(token_hash=_digest(token), user_id=user_id, created_at=now, last_seen_at=now))
        return token

    def _ended(self, now: datetime) -> ColumnElement[bool]:
        return (col(ConsoleSession.last_seen_at) <= now - timedelta(seconds=self.policy.idle_seconds)) | (
            col(ConsoleSession.created_at) <= now - timedelta(seconds=self.policy.max_seconds)
        )

    async def resolve(self, token: str) -> Principal | None:
        """The administrator a live session's token stands for; None when the session is unknown, has idled or
        aged out, or its user is no longer an active administrator."""
        now = clock.now()
        query = (
            select(ConsoleSession, col(User.is_admin), col(User.status))
            .join(User, col(User.id) == col(ConsoleSession.user_id))
            .where(col(ConsoleSession.token_hash) == _digest(token))
        )
        found = (await self.session.execute(query)).first()
        if found is None:
            return None
        row, is_admin, status = found
        idle = now - row.last_seen_at > timedelta(seconds=self.policy.idle_seconds)
        aged = now - row.created_at > timedelta(seconds=self.policy.max_seconds)
        if idle or aged or not is_admin or status != UserStatus.ACTIVE:
            return None
        if now - row.last_seen_at >= TOUCH_INTERVAL:
            await self.session.execute(
                update(ConsoleSession).where(col(ConsoleSession.id) == row.id).values(last_seen_at=now)
            )
        return Principal(user_id=row.user_id, is_admin=True)

    async def prune(self) -> int:
        """Delete every session that has idled or aged out (a sign-in deletes its own user's only); how many."""
        result: Any = await self.session.execute(delete(ConsoleSession).where(self._ended(clock.now())))
        return int(result.rowcount)

    async def end(self, token: str) -> None:
        await self.session.execute(delete(ConsoleSession).where(col(ConsoleSession.token_hash) == _digest(token)))

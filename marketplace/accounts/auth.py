"""Signing in: login with throttling, and resolving a bearer credential (access token or API key) to a
principal."""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import credentials
from marketplace.accounts.models import LoginFailure, OrganizationStatus, User, UserStatus
from marketplace.accounts.principal import Principal
from marketplace.accounts.repository import AccountRepository
from marketplace.accounts.tokens import IssuedToken, TokenKeyring
from marketplace.db import SessionMaker, unit_of_work
from marketplace.errors import NotAuthenticated, TooManyRequests
from marketplace.kit import clock
from marketplace.kit.i18n import Message

# An API key's last use is written at most this often (per key), to keep writes off the request path.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class LoginPolicy:
    window_seconds: int
    max_per_account: int
    max_per_address: int
    registration_window_seconds: int
    registrations_per_address: int


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

    def _subject(self, kind: str, value: str) -> str:
        return hmac.new(self.secret_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    async def login(self, email: str, password: str, address: str) -> IssuedToken:
        return self.keyring.issue((await self.sign_in(email, password, address)).id)

    async def sign_in(self, email: str, password: str, address: str) -> User:
        """The active account these credentials open, under the throttle of failed sign-ins (the API's token and
        the console's session cookie alike)."""
        now = clock.now()
        since = now - timedelta(seconds=self.policy.window_seconds)
        account = self._subject("account", email)
        client = self._subject("address", address)
        for subject, limit in ((account, self.policy.max_per_account), (client, self.policy.max_per_address)):
            count, oldest = await self.repository.login_failures_since(subject, since)
            if count >= limit and oldest is not None:
                wait = self.policy.window_seconds - (now - oldest).total_seconds()
                raise TooManyRequests(
                    Message("auth.too-many-failed-logins", "too many failed logins; try again later"),
                    retry_after=max(1, math.ceil(wait)),
                )
        user = await self.repository.user_by_email(email)
        password_ok = await credentials.verify_password(user.password_hash if user else None, password)
        if user is None or not password_ok or user.status != UserStatus.ACTIVE:
            await self._count((account, client), now, since)
            raise NotAuthenticated(Message("auth.login-failed", "unknown e-mail or wrong password"))
        await self.repository.forget_login_failures(account)
        return user

    async def admit_registration(self, address: str) -> None:
        """Refuse (429) a client address that registered too often in the window, then count this attempt:
        each registration costs an argon2 hash, so an address gets a few, failed ones included."""
        now = clock.now()
        since = now - timedelta(seconds=self.policy.registration_window_seconds)
        # The login throttle's table counts registrations too, under a subject of their own.
        client = self._subject("registration", address)
        count, oldest = await self.repository.login_failures_since(client, since)
        if count >= self.policy.registrations_per_address and oldest is not None:
            wait = self.policy.registration_window_seconds - (now - oldest).total_seconds()
            raise TooManyRequests(
                Message("auth.too-many-registrations", "too many registrations from this address; try again later"),
                retry_after=max(1, math.ceil(wait)),
            )
        await self._count((client,), now, since)

    async def _count(self, subjects: tuple[str, ...], now: datetime, since: datetime) -> None:
        """One more event for each subject, in a transaction of its own (the request's may roll back with
        its refusal); events older than the window are forgotten."""
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
            raise NotAuthenticated(Message("auth.account-inactive", "account is not active"))
        return Principal(user_id=user_id, is_admin=standing[0])

    async def _authenticate_api_key(self, key: str) -> Principal:
        prefix = credentials.api_key_prefix(key)
        # one query: the key and its organisation, which stays in the session for the request's own use
        found = await self.repository.api_key_with_organization(prefix) if prefix else None
        if found is None or not credentials.same_digest(found[0].secret_hash, credentials.hash_api_key(key)):
            raise NotAuthenticated(Message("auth.api-key-invalid", "invalid API key"))
        row, organization = found
        now = clock.now()
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            raise NotAuthenticated(Message("auth.api-key-revoked", "API key revoked or expired"))
        if organization.status == OrganizationStatus.SUSPENDED:
            raise NotAuthenticated(
                Message("auth.api-key-organisation-suspended", "the key's organisation is suspended")
            )
        stale_before = now - API_KEY_TOUCH_INTERVAL
        # most requests find the stamp fresh and write nothing; the write is conditional besides
        if row.last_used_at is None or row.last_used_at < stale_before:
            await self.repository.stamp_api_key_use(row.id, now, stale_before)
        return Principal(
            user_id=None,
            api_key_id=row.id,
            key_organization_id=row.organization_id,
            scopes=frozenset(row.scopes_enum()),
        )

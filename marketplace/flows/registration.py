"""Registration: a person's account, after the client address is let through the registration throttle."""

from __future__ import annotations

from marketplace.accounts.auth import AuthService
from marketplace.accounts.models import User
from marketplace.accounts.schemas import RegisterRequest
from marketplace.accounts.service import AccountService


class Registration:
    def __init__(self, auth: AuthService, accounts: AccountService) -> None:
        self.auth = auth
        self.accounts = accounts

    async def register(self, data: RegisterRequest, address: str) -> User:
        await self.auth.admit_registration(address)
        return await self.accounts.register(data)

"""The caller of a request, as every service sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from marketplace.accounts.models import Scope
from marketplace.errors import Forbidden
from marketplace.kit.i18n import Message


@dataclass(frozen=True)
class Principal:
    """A person (all their memberships apply) or an API key (one organisation, some scopes)."""

    user_id: uuid.UUID | None
    is_admin: bool = False
    api_key_id: uuid.UUID | None = None
    key_organization_id: uuid.UUID | None = None
    scopes: frozenset[Scope] = frozenset()

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.api_key_id is not None:
            return f"api_key:{self.api_key_id}"
        return f"user:{self.user_id}"

    def require_scope(self, scope: Scope) -> None:
        if self.is_api_key and scope not in self.scopes:
            raise Forbidden(
                Message("auth.api-key-lacks-scope", "this API key lacks the {scope} scope", scope=scope.value)
            )

    def require_person(self) -> uuid.UUID:
        """Managing an account, its organisations or keys takes a person, not a key."""
        if self.user_id is None or self.is_api_key:
            raise Forbidden(
                Message("auth.person-required", "this operation requires a user's access token, not an API key")
            )
        return self.user_id

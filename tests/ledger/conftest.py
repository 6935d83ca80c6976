"""Provider organisations for ledger accounts to belong to."""

from __future__ import annotations

import uuid

import pytest

from marketplace.accounts.models import Organization, OrganizationKind
from marketplace.db import SessionMaker, unit_of_work
from marketplace.demo.factories import valid_uscc


@pytest.fixture
async def providers(sessions: SessionMaker) -> list[uuid.UUID]:
    """Two provider organisations (rows only: the ledger needs their ids, not their admission)."""
    organizations = [
        Organization(name=f"Provider {n}", uscc=valid_uscc(), kind=OrganizationKind.PROVIDER, jurisdiction="520100")
        for n in range(2)
    ]
    async with unit_of_work(sessions) as session:
        session.add_all(organizations)
    return [organization.id for organization in organizations]

"""An API key's last use: stamped on first use, then at most once a minute, so most requests write nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from marketplace.kit import clock
from tests.fixtures.api import Api


async def test_last_use_is_stamped_at_most_once_a_minute(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = await api.admin()
    owner = await api.person("Owner")
    organization = await api.admitted_organization(owner, admin)
    created = await api.client.post(
        "/api/v1/api-keys",
        json={"organization_id": organization["id"], "name": "integration", "scopes": ["organizations:read"]},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    key = {"Authorization": f"Bearer {created.json()['key']}"}

    async def used_at(at: datetime) -> str | None:
        monkeypatch.setattr(clock, "now", lambda: at)
        assert (await api.client.get(f"/api/v1/organizations/{organization['id']}", headers=key)).status_code == 200
        keys = await api.client.get(f"/api/v1/api-keys?organization_id={organization['id']}", headers=owner.headers)
        stamp: str | None = keys.json()[0]["last_used_at"]
        return stamp

    start = clock.now()
    first = await used_at(start)
    assert first is not None
    assert await used_at(start + timedelta(seconds=30)) == first
    later = await used_at(start + timedelta(seconds=61))
    assert later is not None
    assert later != first

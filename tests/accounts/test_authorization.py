"""Who may see and change what: other organisations' objects do not exist for a caller (404)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.fixtures.api import Api, Person


@pytest.fixture
async def world(api: Api) -> dict[str, Any]:
    """Buyer A and buyer B, each owning an admitted organisation with a key; an administrator."""
    admin = await api.admin()
    alice, bob = await api.person("Alice"), await api.person("Bob")
    org_a = await api.admitted_organization(alice, admin)
    org_b = await api.admitted_organization(bob, admin)
    key_b = await api.client.post(
        "/api/v1/api-keys",
        json={"organization_id": org_b["id"], "name": "B's integration", "scopes": ["organizations:read"]},
        headers=bob.headers,
    )
    assert key_b.status_code == 201, key_b.text
    members_b = await api.client.get(f"/api/v1/organizations/{org_b['id']}/members", headers=bob.headers)
    return {
        "admin": admin,
        "alice": alice,
        "bob": bob,
        "org_a": org_a,
        "org_b": org_b,
        "key_b": key_b.json(),
        "membership_b": members_b.json()[0],
    }


async def test_buyer_cannot_read_or_change_another_organisation(api: Api, world: dict[str, Any]) -> None:
    alice: Person = world["alice"]
    org_b = world["org_b"]["id"]
    membership_b = world["membership_b"]["id"]
    attempts = [
        ("GET", f"/api/v1/organizations/{org_b}", None),
        ("PATCH", f"/api/v1/organizations/{org_b}", {"name": "Taken over"}),
        ("POST", f"/api/v1/organizations/{org_b}/admission", None),
        ("GET", f"/api/v1/organizations/{org_b}/members", None),
        ("POST", f"/api/v1/organizations/{org_b}/members", {"email": alice.email, "role": "owner"}),
        ("PATCH", f"/api/v1/organizations/{org_b}/members/{membership_b}", {"role": "member"}),
        ("DELETE", f"/api/v1/organizations/{org_b}/members/{membership_b}", None),
        ("GET", f"/api/v1/api-keys?organization_id={org_b}", None),
        (
            "POST",
            "/api/v1/api-keys",
            {"organization_id": org_b, "name": "mine now", "scopes": ["orders:read"]},
        ),
        ("DELETE", f"/api/v1/api-keys/{world['key_b']['id']}", None),
    ]
    for method, path, body in attempts:
        response = await api.client.request(method, path, json=body, headers=alice.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    # and nothing changed
    response = await api.client.get(f"/api/v1/organizations/{org_b}", headers=world["bob"].headers)
    assert response.json()["name"] == world["org_b"]["name"]
    keys = await api.client.get(f"/api/v1/api-keys?organization_id={org_b}", headers=world["bob"].headers)
    assert keys.json()[0]["revoked_at"] is None


async def test_a_membership_of_one_organisation_is_not_reachable_through_another(
    api: Api, world: dict[str, Any]
) -> None:
    alice: Person = world["alice"]
    response = await api.client.delete(
        f"/api/v1/organizations/{world['org_a']['id']}/members/{world['membership_b']['id']}",
        headers=alice.headers,
    )
    assert response.status_code == 404


async def test_buyer_cannot_call_admin_routes(api: Api, world: dict[str, Any]) -> None:
    alice: Person = world["alice"]
    org_b = world["org_b"]["id"]
    attempts = [
        ("GET", "/api/v1/admin/organizations", None),
        ("POST", f"/api/v1/admin/organizations/{org_b}/decision", {"decision": "reject", "reason": "x"}),
        ("GET", "/api/v1/admin/users", None),
        ("POST", f"/api/v1/admin/users/{world['bob'].id}/status", {"status": "disabled", "reason": "x"}),
        ("GET", "/api/v1/admin/audit", None),
        ("GET", "/api/v1/admin/audit/verify", None),
    ]
    for method, path, body in attempts:
        response = await api.client.request(method, path, json=body, headers=alice.headers)
        assert response.status_code in {403, 404}, (method, path)
    bob = await api.client.get("/api/v1/me", headers=world["bob"].headers)
    assert bob.status_code == 200


async def test_api_key_acts_only_for_its_organisation_and_cannot_manage(api: Api, world: dict[str, Any]) -> None:
    key = {"Authorization": f"Bearer {world['key_b']['key']}"}
    org_a, org_b = world["org_a"]["id"], world["org_b"]["id"]
    assert (await api.client.get(f"/api/v1/organizations/{org_b}", headers=key)).status_code == 200
    assert (await api.client.get(f"/api/v1/organizations/{org_a}", headers=key)).status_code == 404
    listed = await api.client.get("/api/v1/organizations", headers=key)
    assert [o["id"] for o in listed.json()["items"]] == [org_b]
    response = await api.client.post(
        "/api/v1/api-keys",
        json={"organization_id": org_b, "name": "escalate", "scopes": ["orders:write"]},
        headers=key,
    )
    assert response.status_code == 403
    assert (await api.client.get(f"/api/v1/organizations/{org_b}/members", headers=key)).status_code == 403


async def test_revoked_api_key_stops_working(api: Api, world: dict[str, Any]) -> None:
    key = {"Authorization": f"Bearer {world['key_b']['key']}"}
    org_b = world["org_b"]["id"]
    revoked = await api.client.delete(f"/api/v1/api-keys/{world['key_b']['id']}", headers=world["bob"].headers)
    assert revoked.status_code == 204
    assert (await api.client.get(f"/api/v1/organizations/{org_b}", headers=key)).status_code == 401


async def test_api_key_secret_is_shown_once_and_stored_hashed(api: Api, world: dict[str, Any]) -> None:
    created = world["key_b"]
    assert created["key"].startswith(created["prefix"] + "_")
    listed = await api.client.get(
        f"/api/v1/api-keys?organization_id={world['org_b']['id']}", headers=world["bob"].headers
    )
    assert "key" not in listed.json()[0]
    async with api.sessions() as session:
        stored = (await session.execute(text("SELECT secret_hash, prefix FROM api_key"))).one()
    assert created["key"] not in stored[0]
    assert stored[1] == created["prefix"]


async def test_plain_member_can_read_but_not_manage(api: Api, world: dict[str, Any]) -> None:
    carol = await api.person("Carol")
    org_b = world["org_b"]["id"]
    added = await api.client.post(
        f"/api/v1/organizations/{org_b}/members",
        json={"email": carol.email, "role": "member"},
        headers=world["bob"].headers,
    )
    assert added.status_code == 201
    assert (await api.client.get(f"/api/v1/organizations/{org_b}", headers=carol.headers)).status_code == 200
    patch = await api.client.patch(f"/api/v1/organizations/{org_b}", json={"name": "x"}, headers=carol.headers)
    assert patch.status_code == 403


async def test_admins_cannot_grant_ownership_and_the_last_owner_stays(api: Api, world: dict[str, Any]) -> None:
    bob: Person = world["bob"]
    org_b = world["org_b"]["id"]
    dave = await api.person("Dave")
    added = await api.client.post(
        f"/api/v1/organizations/{org_b}/members",
        json={"email": dave.email, "role": "admin"},
        headers=bob.headers,
    )
    assert added.status_code == 201
    grab = await api.client.patch(
        f"/api/v1/organizations/{org_b}/members/{added.json()['id']}",
        json={"role": "owner"},
        headers=dave.headers,
    )
    assert grab.status_code == 403
    demote_last_owner = await api.client.patch(
        f"/api/v1/organizations/{org_b}/members/{world['membership_b']['id']}",
        json={"role": "member"},
        headers=bob.headers,
    )
    assert demote_last_owner.status_code == 409
    assert (await api.client.delete("/api/v1/me", headers=bob.headers)).status_code == 409

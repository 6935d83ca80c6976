"""Hole 10, admission without the rules: an administrator could admit an organisation the admission stage
never judged (still `pending`). Only what the rules held for review (`under_review`) is decided by hand."""

from __future__ import annotations

from tests.fixtures.api import Api


async def test_an_administrator_cannot_admit_an_organisation_the_rules_never_judged(api: Api) -> None:
    admin, owner = await api.admin(), await api.person("Owner")
    organization = await api.organization(owner, "provider")
    assert organization["status"] == "pending"
    for decision in ("approve", "reject"):
        refused = await api.client.post(
            f"/api/v1/admin/organizations/{organization['id']}/decision",
            json={"decision": decision, "reason": "looks fine to me"},
            headers=admin.headers,
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith(":conflict")
    after = await api.client.get(f"/api/v1/organizations/{organization['id']}", headers=owner.headers)
    assert after.json()["status"] == "pending"
    audit = await api.client.get(
        "/api/v1/admin/audit",
        params={"object_id": organization["id"], "action": "organization.status_changed"},
        headers=admin.headers,
    )
    assert audit.json()["total"] == 0

"""The stored audit log: written with every change, verifiable, tamper-evident, never forked."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from marketplace.audit.service import AuditService
from marketplace.cli import main as cli_main
from marketplace.db import unit_of_work
from tests.fixtures.api import Api, Person


async def verify(api: Api, admin: Person) -> dict:
    response = await api.client.get("/api/v1/admin/audit/verify", headers=admin.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def some_history(api: Api) -> Person:
    admin = await api.admin()
    owner = await api.person("Owner")
    await api.admitted_organization(owner, admin, kind="provider")
    return admin


async def test_every_account_change_writes_one_entry(api: Api) -> None:
    admin = await some_history(api)
    response = await api.client.get("/api/v1/admin/audit", params={"limit": 200}, headers=admin.headers)
    actions = [item["action"] for item in reversed(response.json()["items"])]
    assert actions == [
        "user.made_admin",
        "user.registered",
        "organization.created",
        "verdict.recorded",
        "organization.status_changed",
    ]
    report = await verify(api, admin)
    assert report["ok"] is True
    assert report["entries"] == 5
    assert report["first_broken_seq"] is None


async def test_audit_search_filters(api: Api) -> None:
    admin = await some_history(api)
    response = await api.client.get(
        "/api/v1/admin/audit",
        params={"object_type": "organization", "action": "organization.created"},
        headers=admin.headers,
    )
    body = response.json()
    assert body["total"] == 1
    organization_id = body["items"][0]["object_id"]
    response = await api.client.get(
        "/api/v1/admin/audit",
        params={"object_id": organization_id, "since": "2000-01-01T00:00:00Z"},
        headers=admin.headers,
    )
    assert response.json()["total"] == 3
    response = await api.client.get(
        "/api/v1/admin/audit", params={"until": "2000-01-01T00:00:00"}, headers=admin.headers
    )
    assert response.json()["total"] == 0


async def test_no_entry_is_written_when_the_change_fails(api: Api) -> None:
    admin = await some_history(api)
    before = (await verify(api, admin))["entries"]
    duplicate = await api.client.post(
        "/api/v1/auth/register", json={"email": admin.email, "password": "x" * 12, "name": "Again"}
    )
    assert duplicate.status_code == 409
    assert (await verify(api, admin))["entries"] == before


@pytest.mark.parametrize(
    ("tamper", "first_broken"),
    [
        ("UPDATE audit_entry SET actor = 'user:someone-else' WHERE seq = 3", 3),
        ("UPDATE audit_entry SET payload = '{}' WHERE seq = 4", 4),
        ("DELETE FROM audit_entry WHERE seq = 2", 2),
        ("DELETE FROM audit_entry WHERE seq = 5", 5),
        ("UPDATE audit_entry SET seq = seq + 100 WHERE seq = 1", 1),
    ],
)
async def test_tampering_in_the_database_is_named(api: Api, tamper: str, first_broken: int) -> None:
    admin = await some_history(api)
    async with unit_of_work(api.sessions) as session:
        await session.execute(text(tamper))
    report = await verify(api, admin)
    assert report["ok"] is False
    assert report["first_broken_seq"] == first_broken


async def test_cli_verify_exits_nonzero_on_a_broken_chain(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    await some_history(api)
    settings = api.app.state.runtime.settings
    env = {"DATABASE_URL": settings.database_url, "STORAGE_DIR": str(settings.storage_dir)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert await asyncio.to_thread(cli_main, ["audit", "verify"]) == 0
        async with unit_of_work(api.sessions) as session:
            await session.execute(text("UPDATE audit_entry SET action = 'forged' WHERE seq = 2"))
        assert await asyncio.to_thread(cli_main, ["audit", "verify"]) == 1
    assert '"first_broken_seq": 2' in capsys.readouterr().out


@pytest.mark.postgres
async def test_concurrent_writers_never_fork_the_chain(api: Api) -> None:
    writers, entries_each = 40, 3

    async def writer(n: int) -> None:
        async with unit_of_work(api.sessions) as session:
            audit = AuditService(session)
            for k in range(entries_each):
                await audit.record(
                    actor="test",
                    action="concurrent.write",
                    object_type="test",
                    object_id=f"{n}-{k}",
                    payload={"n": n},
                )

    await asyncio.gather(*(writer(n) for n in range(writers)))
    async with api.sessions() as session:
        report = await AuditService(session).verify()
        seqs = (await session.execute(text("SELECT seq FROM audit_entry ORDER BY seq"))).scalars().all()
    assert report.ok, report
    assert report.entries == writers * entries_each
    assert seqs == list(range(1, writers * entries_each + 1))

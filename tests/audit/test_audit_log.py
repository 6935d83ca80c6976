"""The stored audit log: written with every change, verifiable, tamper-evident, never forked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from sqlalchemy import text

from marketplace.audit.service import AuditService
from marketplace.cli import main as cli_main
from marketplace.db import unit_of_work
from marketplace.jobs import sequence_audit
from marketplace.kit import merkle
from marketplace.kit.merkle import leaf_hash
from tests.fixtures.api import Api, Person


async def verify(api: Api, admin: Person) -> dict:
    """The log verified over the API, once the sequencer has made every entry a leaf."""
    await sequence_audit(api.runtime())
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
    assert (report["entries"], report["tree_size"], report["heads"]) == (5, 5, 1)
    assert report["first_broken_leaf"] is None


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


# The five entries of `some_history` are leaves 0..4 under one head; each tampering is named at its leaf.
TAMPERING = {
    "a column edited": ("UPDATE audit_entry SET actor = 'user:someone-else' WHERE leaf_index = 3", 3),
    "a payload edited": ("UPDATE audit_entry SET payload = '{}' WHERE leaf_index = 4", 4),
    "an entry deleted": ("DELETE FROM audit_entry WHERE leaf_index = 2", 2),
    "the last entry deleted": ("DELETE FROM audit_entry WHERE leaf_index = 4", 4),
    "text and columns edited alike": (
        "UPDATE audit_entry SET action = 'forged', leaf = replace(leaf, '\"action\":\"user.registered\"',"
        ' \'"action":"forged"\') WHERE leaf_index = 1',
        1,
    ),
    "two entries swapped": (
        "UPDATE audit_entry SET leaf_index = -1 WHERE leaf_index = 1;"
        "UPDATE audit_entry SET leaf_index = 1 WHERE leaf_index = 2;"
        "UPDATE audit_entry SET leaf_index = 2 WHERE leaf_index = -1",
        1,
    ),
    "an entry inserted past the tree": (
        "INSERT INTO audit_entry (id, at, actor, action, object_type, object_id, payload, leaf, leaf_index)"
        " SELECT id + 1000, at, actor, action, object_type, object_id, payload, replace(leaf, CAST(id AS TEXT),"
        " CAST(id + 1000 AS TEXT)), 5 FROM audit_entry WHERE leaf_index = 0",
        5,
    ),
    "a stored leaf hash and text rewritten alike": (
        "UPDATE audit_entry SET leaf = replace(leaf, 'user.made_admin', 'user.forged'),"
        " action = 'user.forged' WHERE leaf_index = 0;"
        "UPDATE audit_node SET hash = :forged WHERE level = 0 AND position = 0",
        0,
    ),
}


@pytest.mark.parametrize(("tamper", "first_broken"), list(TAMPERING.values()), ids=list(TAMPERING))
async def test_tampering_in_the_database_is_named(api: Api, tamper: str, first_broken: int) -> None:
    admin = await some_history(api)
    assert (await verify(api, admin))["ok"] is True
    async with unit_of_work(api.sessions) as session:
        forged = await session.scalar(text("SELECT leaf FROM audit_entry WHERE leaf_index = 0"))
        for statement in tamper.split(";"):
            forged_hash = leaf_hash(forged.replace("user.made_admin", "user.forged").encode())
            await session.execute(text(statement), {"forged": forged_hash} if ":forged" in statement else {})
    report = await verify(api, admin)
    assert report["ok"] is False
    assert report["first_broken_leaf"] == first_broken, report


async def test_columns_with_texts_that_need_escaping_are_compared_as_their_json(api: Api) -> None:
    """PostgreSQL quotes the texts that need no escape as they are (the cheaper comparison); the others, and any
    edit that would pass for the leaf's text without escaping, are compared as JSON."""
    admin = await api.admin()
    async with api.services() as services:
        audit = AuditService(services.session)
        needs_escaping = 'a "quoted" \\ 交易\n'
        await audit.record(actor=needs_escaping, action="test.act", object_type="test", object_id="1", payload={})
        edited = await audit.record(
            actor="test", action="test.act", object_type="test", object_id="2", payload={"a": "b", "payload": 1}
        )
    assert (await verify(api, admin))["ok"] is True
    async with unit_of_work(api.sessions) as session:
        # without escaping, these columns would make the entry's leaf text exactly
        await session.execute(
            text("""UPDATE audit_entry SET object_type = 'test","payload":{"a":"b', payload = '1}' WHERE id = :id"""),
            {"id": edited},
        )
    report = await verify(api, admin)
    assert (report["ok"], report["entry_id"]) == (False, edited), report


async def test_cli_verify_exits_nonzero_on_a_broken_log(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    await some_history(api)
    settings = api.app.state.runtime.settings
    env = {"DATABASE_URL": settings.database_url, "STORAGE_DIR": str(settings.storage_dir)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert await asyncio.to_thread(cli_main, ["audit", "sequence"]) == 0
        assert await asyncio.to_thread(cli_main, ["audit", "verify"]) == 0
        async with unit_of_work(api.sessions) as session:
            await session.execute(text("UPDATE audit_entry SET action = 'forged' WHERE leaf_index = 2"))
        assert await asyncio.to_thread(cli_main, ["audit", "verify"]) == 1
    assert '"first_broken_leaf": 2' in capsys.readouterr().out


def record(audit: AuditService, n: int, k: int = 0) -> Awaitable[int]:
    return audit.record(actor="test", action="concurrent.write", object_type="test", object_id=f"{n}-{k}", payload={})


@pytest.mark.postgres
async def test_an_open_append_holds_nothing_other_writers_wait_for(api: Api) -> None:
    async with unit_of_work(api.sessions) as open_session:
        await record(AuditService(open_session), 0)
        async with unit_of_work(api.sessions) as session:
            await asyncio.wait_for(record(AuditService(session), 1), timeout=5)
        # and the sequencer takes what has committed, leaving the open append for a later run
        assert (await sequence_audit(api.runtime()))["integrated_entries"] == 1
    assert (await sequence_audit(api.runtime()))["integrated_entries"] == 1


@pytest.mark.postgres
@pytest.mark.usefixtures("many_connections")
async def test_forty_writers_and_running_sequencers_make_one_tree(api: Api) -> None:
    """40 concurrent transactions append while two sequencers run passes: every entry becomes exactly one leaf,
    the leaves are 0..n-1 with no gap, and the last head's root is the root of the leaves as stored."""
    writers, entries_each = 40, 5
    runtime = api.runtime(settings=api.runtime().settings.model_copy(update={"audit_sequencer_batch": 7}))
    writing = True

    async def writer(n: int) -> None:
        for k in range(entries_each):
            async with unit_of_work(api.sessions) as session:
                await record(AuditService(session), n, k)

    async def sequencer() -> None:
        while writing:
            await sequence_audit(runtime)

    sequencers = [asyncio.create_task(sequencer()) for _ in range(2)]
    await asyncio.gather(*(writer(n) for n in range(writers)))
    writing = False
    await asyncio.gather(*sequencers)
    await sequence_audit(runtime)
    async with api.services() as services:
        rows = (await services.session.execute(text("SELECT leaf_index, leaf FROM audit_entry ORDER BY id"))).all()
        head = await services.transparency.latest_head()
        heads = (await services.transparency.heads(limit=1, offset=0))[1]
        report = await services.transparency.verify()
    total = writers * entries_each
    assert len(rows) == total
    assert sorted(index for index, _ in rows) == list(range(total))
    leaves = [leaf_hash(leaf.encode()) for _, leaf in sorted(rows)]
    assert head is not None
    assert (head.tree_size, head.root_hash) == (total, merkle.root(leaves).hex())
    assert heads > 1
    assert report.ok, report

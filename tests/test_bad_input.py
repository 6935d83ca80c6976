"""Bad input gets a 4xx problem-details answer and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from marketplace.demo.factories import organization_body
from marketplace.tables import metadata
from tests.fixtures.api import Api, Person


async def row_counts(api: Api) -> dict[str, int]:
    async with api.sessions() as session:
        return {
            table.name: int((await session.execute(select(func.count()).select_from(table))).scalar_one())
            for table in metadata.sorted_tables
        }


@pytest.fixture
async def owner(api: Api) -> Person:
    return await api.person("Owner")


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    "body",
    [
        organization_body("provider", dsmm_level="5"),
        organization_body("provider", dsmm_level=True),
        organization_body("provider", dsmm_level=5.5),
        organization_body("provider", penalties_last_3y="0"),
        organization_body("provider", penalties_last_3y=False),
        organization_body("provider", penalties_last_3y=-1),
        # codes the rulebook judges reach it (tests/security/test_schema_judging_what_a_rule_should.py); their
        # size is still the schema's
        organization_body("provider", uscc="9" * 65),
        organization_body("provider", jurisdiction="Guizhou Province, China"),
        organization_body(kind="seller"),
        organization_body("provider", name=""),
        organization_body("provider", name=123),
        organization_body("provider", security_certifications="ISO 27001"),
        organization_body("provider", unknown_field="surprise"),
        organization_body(
            "provider", intermediary={"roles": ["broker"], "fee_disclosure": "2%", "retains_no_traded_data": "yes"}
        ),
        {"name": "Acme Data"},
        [],
        "a string",
        None,
    ],
)
async def test_wrong_types_and_unknown_fields_are_refused(api: Api, owner: Person, body: Any) -> None:
    before = await row_counts(api)
    response = await api.client.post("/api/v1/organizations", json=body, headers=owner.headers)
    problem = assert_problem(response, 400)
    assert all("input" not in error for error in problem.get("errors", []))  # values are not echoed
    assert await row_counts(api) == before


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"name": "x",}', b"\xff\xfe", b'{"name": "Acme"} trailing', b"", b"nul\x00"],
)
async def test_malformed_json_is_refused(api: Api, owner: Person, raw: bytes) -> None:
    before = await row_counts(api)
    response = await api.client.post(
        "/api/v1/organizations", content=raw, headers={**owner.headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    assert await row_counts(api) == before


async def test_oversized_body_is_refused(api: Api, owner: Person) -> None:
    before = await row_counts(api)
    huge = organization_body(
        "provider", business_scope="x" * (api.app.state.runtime.settings.max_request_body_bytes + 1)
    )
    response = await api.client.post("/api/v1/organizations", json=huge, headers=owner.headers)
    assert_problem(response, 413)
    assert await row_counts(api) == before


async def test_registration_input_rules(api: Api) -> None:
    before = await row_counts(api)
    for body in [
        {"email": "not-an-email", "password": "long enough password", "name": "X"},
        {"email": "a@example.com", "password": "short", "name": "X"},
        {"email": "a@example.com", "password": "long enough password", "name": "X", "is_admin": True},
        {"email": "a@example.com", "password": 123456789012, "name": "X"},
    ]:
        assert_problem(await api.client.post("/api/v1/auth/register", json=body), 400)
    assert await row_counts(api) == before


async def test_bad_path_and_query_parameters(api: Api, owner: Person) -> None:
    assert_problem(await api.client.get("/api/v1/organizations/not-a-uuid", headers=owner.headers), 404)
    assert_problem(await api.client.get("/api/v1/organizations?limit=100000", headers=owner.headers), 400)
    assert_problem(await api.client.get("/api/v1/organizations?limit=abc", headers=owner.headers), 400)
    assert_problem(await api.client.get("/api/v1/organizations?offset=-1", headers=owner.headers), 400)
    assert_problem(await api.client.get("/api/v1/no-such-route"), 404)
    assert_problem(await api.client.put("/api/v1/organizations", headers=owner.headers), 405)

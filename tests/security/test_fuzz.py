"""A bounded fuzz of every write operation: malformed and hostile bodies and query strings, at least 4,000
in all, sent by an administrator (so that what is refused is refused for its content, not its caller). No
answer is a 500, and a refused request changes no row (except what a refusal is documented to keep: failed
logins and registration attempts for the throttles, a rejected order for the auditors, a delivery refusal's
verdict)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from sqlalchemy import func, select

from marketplace.tables import metadata
from tests.fixtures.api import Api

EXAMPLES = 4_200  # bodies and query strings over all write operations
# The operations are dealt into shards, each its own test with its share of the examples, so that the
# suite's workers fuzz side by side.
SHARDS = 8
# Tables a refusal writes on purpose (the login and registration throttles count attempts).
KEPT_BY_REFUSALS = {"login_failure"}
# Problems whose refusal keeps a record by design: the rejected order, the delivery stage's verdict.
RECORDED_REFUSALS = ("trade-rejected", "delivery-refused")
WRITES = ("post", "put", "patch", "delete")

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "\x00", "\u202e", "' OR 1=1 --", '=HYPERLINK("x")', "../../etc/passwd", "𝕏" * 300, "9" * 400, "-0"]
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | hostile_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(hostile_text, children, max_size=5),
    max_leaves=20,
)
raw_bodies = st.sampled_from([b"{", b"\x00\xff", b"[" * 3000, b'{"a":' * 2000, b"\xef\xbb\xbf{}", b"null"])


def operations(app: Litestar) -> list[tuple[str, str, list[str]]]:
    """(method, path template, body field names) of every write operation in the OpenAPI document."""
    document = app.openapi_schema.to_schema()
    found = []
    for path, item in document["paths"].items():
        for method in WRITES:
            if method in item:
                schema = (
                    item[method].get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
                )
                fields = list(_properties(document, schema))
                found.append((method, path, fields))
    return sorted(found)


def _properties(document: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    if not schema:
        return {}
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return dict(document["components"]["schemas"].get(name, {}).get("properties", {}))
    return dict(schema.get("properties", {}))


def requests(app: Litestar, shard: int, ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    shard_operations = operations(app)[shard::SHARDS]  # once: the document takes ~40 ms to build
    path_ids = st.sampled_from(ids) | st.uuids().map(str) | st.sampled_from(["0", "not-a-uuid", "%00", "a" * 300])

    @st.composite
    def request(draw: st.DrawFn) -> dict[str, Any]:
        method, template, fields = draw(st.sampled_from(shard_operations))
        path = template
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + draw(path_ids) + path[end + 1 :]
        query = draw(
            st.dictionaries(hostile_text | st.sampled_from(["limit", "version", "format"]), hostile_text, max_size=3)
        )
        if fields and draw(st.booleans()):  # the documented fields, with hostile values
            body: Any = draw(st.fixed_dictionaries({}, optional=dict.fromkeys(fields, json_values)))
            content = json.dumps(body, default=str).encode()
        elif draw(st.booleans()):
            content = json.dumps(draw(json_values), default=str).encode()
        else:
            content = draw(raw_bodies)
        content_type = draw(st.sampled_from(["application/json", "text/csv", "text/plain", "application/x-ndjson"]))
        return {"method": method.upper(), "path": path, "params": query, "content": content, "type": content_type}

    return request()


COUNTED = [table for table in metadata.sorted_tables if table.name not in KEPT_BY_REFUSALS]
# Every table's row count in one round trip.
ROW_COUNTS = select(*(select(func.count()).select_from(table).scalar_subquery() for table in COUNTED))


async def row_counts(api: Api) -> tuple[int, ...]:
    async with api.sessions() as session:
        return tuple((await session.execute(ROW_COUNTS)).one())


@pytest.fixture
async def known_ids(api: Api) -> list[str]:
    """Ids that exist, so that paths reach past 404 often: an organisation, its owner, a listed product."""
    from tests.orders.conftest import listed_product

    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    product_id, plan_id = await listed_product(api, owner, organization["id"])
    return [organization["id"], owner.id, product_id, plan_id, admin.id]


@pytest.mark.parametrize("shard", range(SHARDS))
async def test_no_hostile_write_gets_a_500_or_changes_a_row_when_refused(
    api: Api, app: Litestar, known_ids: list[str], shard: int
) -> None:
    admin = await api.admin()
    loop = asyncio.get_running_loop()
    seen: dict[int, int] = {}
    counts = [await row_counts(api)]  # counts[0]: as the last request left them

    async def send(request: dict[str, Any]) -> tuple[httpx.Response, tuple[int, ...], tuple[int, ...]]:
        before = counts[0]
        response = await api.client.request(
            request["method"],
            request["path"],
            params=request["params"],
            content=request["content"],
            headers={**admin.headers, "Content-Type": request["type"], "Idempotency-Key": uuid.uuid4().hex},
        )
        counts[0] = await row_counts(api)
        return response, before, counts[0]

    @settings(
        max_examples=EXAMPLES // SHARDS,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every run: a CI failure reproduces
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests(app, shard, known_ids))
    def fuzz(request: dict[str, Any]) -> None:
        response, before, after = asyncio.run_coroutine_threadsafe(send(request), loop).result()
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (request, response.status_code, response.text[:500])
        if response.status_code >= 400:
            kind = response.json().get("type", "") if response.content else ""
            if not kind.endswith(RECORDED_REFUSALS):
                assert before == after, (request, response.status_code, response.text[:300])

    await asyncio.to_thread(fuzz)
    assert sum(seen.values()) >= 4_000 // SHARDS, seen  # 4,000 in all, at least

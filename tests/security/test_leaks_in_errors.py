"""Hole 8, leaks in errors: a binary file uploaded as a dataset was hosted, and a buyer's data call then answered
422 `Error when sniffing file "<server path>"`; other DuckDB binder and conversion messages reached buyers too,
one of them quoting a row's value. A dataset is now read through as CSV or JSON lines at upload (a binary
file is refused and nothing is kept), and the engine's errors become our own problems, in our words."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import httpx
import pytest

from marketplace.config import Settings
from tests.delivery.conftest import DISTRICT_ROWS, FIELDS, Market, Product, open_market
from tests.delivery.test_data_api import access_key, aggregate, rows
from tests.fixtures.api import Api
from tests.security.test_fuzz import row_counts
from tests.security.test_privacy import privacy_licence, usage_calls

PROBLEM = "urn:marketplace:problem:"
# Every byte value, NUL included, after a PNG signature: no UTF-8 text, neither CSV nor JSON lines.
BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
# A station code is text that is no number: a filter comparing it with one made the engine quote it.
STATION = "GY-A01"
STATIONS = "station,day,amount,kind\n" + "".join(
    f"{STATION if i % 2 else 'GY-B02'},2026-01-{i + 1:02d},{100 + i},{'bus' if i % 3 else 'taxi'}\n" for i in range(12)
)
STATION_FIELDS = [
    {"name": "station", "type": "string"},
    {"name": "day", "type": "date"},
    {"name": "amount", "type": "integer"},
    {"name": "kind", "type": "string"},
]
# Aggregates under an API licence: grouped by kind, filtered on any column, amounts measured.
STATION_COMPUTATION = {"group_by": ["kind"], "filter": ["station", "day", "amount"], "measure": ["amount"]}
# Well-formed CSV throughout, so the upload accepts it; the engine reads `amount` as an integer from the first
# rows it samples and fails to convert the last one when the dataset is first queried.
LATE_TEXT = "station,amount\n" + "".join(f"GY-{i % 7},{i}\n" for i in range(30_000)) + "GY-0,abc\n"
# A filter value the engine cannot compare with its column, one of each failure seen.
BAD_FILTERS = [
    'amount:gt:"abc"',  # Conversion Error: text for an integer column
    "day:gt:1",  # Binder Error: a number for a date column
    'day:lt:"not a date"',  # Conversion Error: a date that is none
    "station:eq:5",  # Conversion Error quoting a row's value: the text column cast to the number
    'station:in:[true, "x"]',  # the same, to a boolean
    "amount:eq:1" + "0" * 40,  # Invalid Input Error: beyond 128 bits
    'station:eq:"\\ud800"',  # Invalid Input Error: a lone surrogate, no UTF-8 text
]
BAD_AGGREGATE_FILTERS = [
    {"column": "amount", "op": "ge", "value": "abc"},
    {"column": "day", "op": "eq", "value": True},
    {"column": "station", "op": "lt", "value": 7},
]
# What the engine's messages carried; none of it may reach a buyer.
ENGINE_WORDS = (
    "duckdb",
    "binder error",
    "conversion error",
    "invalid input",
    "sniffing",
    ".parquet",
    "gy-a01",
    "gy-b02",
)


@pytest.fixture
async def shop(api: Api) -> Market:
    return await open_market(api)


async def put_dataset(shop: Market, product: Product, content: bytes, media_type: str) -> httpx.Response:
    return await shop.api.client.put(
        f"/api/v1/products/{product.id}/dataset",
        content=content,
        headers={**shop.provider.headers, "Content-Type": media_type},
    )


def assert_problem(response: httpx.Response, status: int, code: str, settings: Settings) -> dict[str, Any]:
    """The refusal is our problem document, with nothing of the server's or the engine's in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = dict(response.json())
    assert problem["type"] == PROBLEM + code, problem
    assert_nothing_leaked(response.text, settings)
    return problem


def assert_nothing_leaked(text: str, settings: Settings) -> None:
    assert str(settings.storage_dir) not in text
    assert not [word for word in ENGINE_WORDS if word in text.lower()], text


async def api_licence(shop: Market, dataset: str, **product: Any) -> tuple[str, str]:
    """An API licence on a product whose dataset is `dataset`, and its access key."""
    bought = await shop.product(delivery_modes=["api"], dataset=dataset.encode(), **product)
    key, body = await access_key(shop, await shop.paid_order(bought, "api"))
    return str(body["licence_id"]), key


@pytest.mark.parametrize("media_type", ["text/csv", "application/x-ndjson"])
async def test_a_binary_dataset_is_refused_at_upload_and_nothing_is_kept(
    shop: Market, settings: Settings, media_type: str
) -> None:
    product = await shop.draft(delivery_modes=["api"], fields=FIELDS)
    before = await row_counts(shop.api)
    refused = await put_dataset(shop, product, BINARY, media_type)
    problem = assert_problem(refused, 422, "unprocessable", settings)
    assert (problem["dataset_error"], problem["detail"]) == ("not-utf8", "the file is not valid UTF-8 text")
    assert await row_counts(shop.api) == before
    stored = settings.dataset_dir / hashlib.sha256(BINARY).hexdigest()[:2] / hashlib.sha256(BINARY).hexdigest()
    assert not stored.exists()
    # The version has no dataset: it cannot list (R1), and another one is taken (a hosted one would be a 409).
    unlisted = await shop.api.client.post(f"/api/v1/products/{product.id}/submit", headers=shop.provider.headers)
    refusals = [f["check"] for f in unlisted.json()["verdict"]["findings"] if f["outcome"] == "fail"]
    assert "R1.dataset-hosted" in refusals
    assert (await put_dataset(shop, product, STATIONS.encode(), "text/csv")).status_code == 201


async def test_a_valid_csv_and_a_valid_ndjson_are_still_hosted_and_queried(shop: Market) -> None:
    csv_product = await shop.draft(delivery_modes=["api"], fields=STATION_FIELDS)
    hosted = await put_dataset(shop, csv_product, STATIONS.encode(), "text/csv; charset=utf-8")
    assert hosted.status_code == 201, hosted.text
    assert hosted.json()["media_type"] == "text/csv"
    json_lines = "".join(
        json.dumps({"district": d, "kind": k, "amount": a, "person": p}) + "\n" for d, k, a, p in DISTRICT_ROWS
    )
    product = await shop.draft(delivery_modes=["api"], fields=FIELDS)
    hosted = await put_dataset(shop, product, json_lines.encode(), "application/x-ndjson")
    assert hosted.status_code == 201, hosted.text
    assert hosted.json()["media_type"] == "application/x-ndjson"
    await shop.submit(product)
    key, body = await access_key(shop, await shop.paid_order(product, "api"))
    page = await rows(shop, body["licence_id"], key, limit=3, where=['kind:eq:"taxi"'])
    assert page.status_code == 200, page.text
    assert page.json()["rows"] == [list(row) for row in DISTRICT_ROWS if row[1] == "taxi"][:3]


async def test_filters_the_engine_cannot_run_get_our_problem_and_are_not_metered(
    shop: Market, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    licence_id, key = await api_licence(shop, STATIONS, fields=STATION_FIELDS, computation=STATION_COMPUTATION)
    before = await row_counts(shop.api)
    for where in BAD_FILTERS:
        refused = await rows(shop, licence_id, key, where=[where])
        problem = assert_problem(refused, 422, "query-refused", settings)
        assert problem["query_error"] == "bad-filter", (where, problem)
    for condition in BAD_AGGREGATE_FILTERS:
        body = {"group_by": ["kind"], "metrics": [{"fn": "count"}], "filters": [condition]}
        refused = await aggregate(shop, licence_id, key, body)
        problem = assert_problem(refused, 422, "query-refused", settings)
        assert problem["query_error"] == "bad-filter", (condition, problem)
    named = await rows(shop, licence_id, key, where=["day:gt:1"])
    assert named.json()["detail"] == "a filter's value does not fit its column's type ('day' is DATE)"
    assert await row_counts(shop.api) == before
    assert await usage_calls(shop, licence_id) == 0
    assert_nothing_leaked(caplog.text, settings)
    # The same filters with values that fit are answered, and are the licence's first metered call.
    fitting = await rows(
        shop, licence_id, key, where=["amount:gt:102", 'day:lt:"2026-01-10"', f'station:eq:"{STATION}"']
    )
    assert fitting.status_code == 200, fitting.text
    assert (len(fitting.json()["rows"]), fitting.json()["call_number"]) == (3, 1)


async def test_a_dataset_the_engine_cannot_convert_gets_our_problem_and_is_not_metered(
    shop: Market, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    licence_id, key = await api_licence(
        shop, LATE_TEXT, fields=[{"name": "station", "type": "string"}, {"name": "amount", "type": "integer"}]
    )
    before = await row_counts(shop.api)
    refused = await rows(shop, licence_id, key, limit=1)
    problem = assert_problem(refused, 422, "query-refused", settings)
    assert problem["query_error"] == "unreadable"
    assert problem["detail"] == "the hosted dataset cannot be read as its media type"
    assert await row_counts(shop.api) == before
    assert await usage_calls(shop, licence_id) == 0
    assert_nothing_leaked(caplog.text, settings)


async def test_a_private_aggregate_the_engine_cannot_run_spends_no_budget(shop: Market, settings: Settings) -> None:
    """Under privacy computing raw rows never leave: the engine's message quoted one ('bus'), and a refused
    query must not spend epsilon either."""
    licence_id, key = await privacy_licence(shop)
    body = {
        "group_by": ["district"],
        "metrics": [{"fn": "count"}],
        "filters": [{"column": "kind", "op": "eq", "value": 5}],
    }
    refused = await aggregate(shop, licence_id, key, body)
    problem = assert_problem(refused, 422, "query-refused", settings)
    assert problem["query_error"] == "bad-filter"
    assert not re.search(r"\b(bus|taxi)\b", refused.text), refused.text
    answered = await aggregate(shop, licence_id, key, {"metrics": [{"fn": "count"}]})
    assert answered.status_code == 200, answered.text
    assert (answered.json()["privacy"]["budget_spent"], answered.json()["call_number"]) == (1.0, 1)

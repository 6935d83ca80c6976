"""`GET /metrics`: off without a token, refused with a wrong one, and with it the HTTP requests by route
template and the exchange's counts, the demo trade included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families

from marketplace.app import create_app
from marketplace.config import Settings
from marketplace.demo import seed_demo
from tests.fixtures.api import Api

TOKEN = "metrics-token-for-tests"


@pytest.fixture
async def scraped(settings: Settings, app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The service with metrics on, on the run's database (`app` empties it afterwards)."""
    with_metrics = create_app(settings.model_copy(update={"metrics_token": TOKEN, "database_pool_size": 2}))
    transport = httpx.ASGITransport(app=with_metrics)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await with_metrics.state.runtime.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_are_off_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN[:-1]])
async def test_a_scraper_without_the_token_is_refused(scraped: httpx.AsyncClient, header: str | None) -> None:
    response = await scraped.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert "marketplace_orders" not in response.text


async def test_the_demo_trade_and_the_requests_are_counted(scraped: httpx.AsyncClient, api: Api) -> None:
    async with api.services() as services:
        await seed_demo(services, only_if_empty=True)
    await scraped.get("/health")
    product_path = "/api/v1/products/00000000-0000-0000-0000-000000000000"
    assert (await scraped.get(product_path)).status_code in {401, 404}

    response = await scraped.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    orders = {labels: value for (name, labels), value in found.items() if name == "marketplace_orders"}
    assert orders, response.text
    assert sum(orders.values()) >= 1
    assert any(dict(labels)["status"] in {"paid_out", "completed"} for labels in orders)
    verdicts = {dict(labels)["stage"] for (name, labels), _ in found.items() if name == "marketplace_verdicts"}
    assert {"admission", "listing", "trade"} <= verdicts
    requests = [dict(labels) for (name, labels), _ in found.items() if name == "marketplace_http_requests_total"]
    assert {"path": "/health", "method": "GET", "status_code": "200", "app_name": "marketplace"} in requests
    paths = {request["path"] for request in requests}
    assert "/api/v1/products/{product_id:uuid}" in paths or "/api/v1/products/{product_id}" in paths
    assert product_path not in paths  # ids never become labels
    problems = {
        dict(labels)["type"]: value for (name, labels), value in found.items() if name == "marketplace_problems_total"
    }
    assert problems.get("not-found", 0) >= 1  # the unknown product, by problem type
    findings = {
        tuple(sorted(dict(labels).items()))
        for (name, labels), _ in found.items()
        if name == "marketplace_verdict_findings_total"
    }
    stages = {dict(labels)["stage"] for labels in findings}
    assert "listing" in stages  # the demo's rejected and held products, by the rules that failed them

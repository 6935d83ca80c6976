"""Hole 4, differencing in privacy computing: with k = 10, `sum(salary)` over 20 people was 20,190 and the same
with `person != P7` 19,183, so the difference was P7's exact salary and nothing was suppressed. Answers are
now differentially private (OpenDP's Laplace noise, calibrated from the product's bounds and epsilon per
query) and every answer spends a per-licence privacy budget.

OpenDP's secure noise takes no seed, so the statistical checks count how often the noise passes a threshold
and accept the count only inside the range a binomial leaves with probability below 1e-6 (`acceptance`):
a correct implementation fails one of them less than once in a million runs."""

from __future__ import annotations

import asyncio
import csv
import math
from pathlib import Path
from typing import Any

import pytest

from marketplace.catalog.samples import CSV
from marketplace.delivery.hosting import AllowedColumns, Filter, HostedTable, Metric, aggregate, prepare_table
from marketplace.delivery.privacy import NoisePlan, PrivacyTerms, plan, release, to_micro
from marketplace.demo.factories import product_body
from tests.delivery.conftest import COMPUTATION, DISTRICT_DATASET, FIELDS, Market, open_market
from tests.delivery.test_data_api import access_key
from tests.fixtures.api import Api

FAILURE = 1e-6
K = 10
P7_SALARY = 1_007
TOTAL = 20_190
ALLOWED = AllowedColumns(group_by=frozenset(), filter=frozenset({"person"}), measure=frozenset({"salary"}))
SALARY_TERMS = PrivacyTerms(query_micro=to_micro(1.0), budget_micro=to_micro(10.0), bounds={"salary": (0.0, 5000.0)})
BUT_P7 = [Filter("person", "ne", "P7")]


def acceptance(n: int, p: float) -> tuple[int, int]:
    """The counts [low, high] between which Binomial(n, p) falls but with probability below FAILURE."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    low, below = 0, 0.0
    while below + pmf[low] < FAILURE / 2:
        below += pmf[low]
        low += 1
    high, above = n, 0.0
    while above + pmf[high] < FAILURE / 2:
        above += pmf[high]
        high -= 1
    return low, high


@pytest.fixture
def salaries(tmp_path: Path) -> HostedTable:
    """Twenty people; P7 earns 1,007 and all of them 20,190."""
    others = [900 + 10 * i for i in range(19)]
    others[0] += TOTAL - P7_SALARY - sum(others)
    paid = [*others[:7], P7_SALARY, *others[7:]]
    source = tmp_path / "salaries.csv"
    with source.open("w", newline="") as out:
        csv.writer(out).writerows([("person", "salary"), *((f"P{i}", s) for i, s in enumerate(paid))])
    return prepare_table(source, CSV, "a" * 64, tmp_path / "cache", text_columns=frozenset({"person"}))


def exact(table: HostedTable, noise: NoisePlan, filters: list[Filter]) -> Any:
    return aggregate(
        table,
        group_by=[],
        metrics=noise.statistics,
        filters=filters,
        allowed=ALLOWED,
        min_group_size=K,
        bounds=noise.bounds,
    )


def test_the_differencing_pair_learns_noise_not_the_salary(salaries: HostedTable) -> None:
    noise = plan([Metric("sum", "salary")], SALARY_TERMS)
    everyone, but_p7 = exact(salaries, noise, []), exact(salaries, noise, BUT_P7)
    # The attack on exact answers: nothing is suppressed and the difference is P7's salary.
    assert (everyone.suppressed_groups, but_p7.suppressed_groups) == (0, 0)
    assert everyone.groups[0]["sum(salary)"] - but_p7.groups[0]["sum(salary)"] == P7_SALARY
    scale = noise.metrics[0].noise[0].scale
    assert scale == pytest.approx(5000 / 1.0, rel=1e-6)  # (upper bound) / epsilon

    errors = [
        release(everyone, noise).groups[0]["sum(salary)"] - release(but_p7, noise).groups[0]["sum(salary)"] - P7_SALARY
        for _ in range(200)
    ]
    # The difference of two independent Laplace(b) passes t with probability e^(-t/b) (1 + t / 2b).
    beyond = math.exp(-1) * 1.5
    low, high = acceptance(200, beyond)
    assert low <= sum(abs(e) > scale for e in errors) <= high, "the noise does not have the declared scale"
    near = 1 - math.exp(-100 / scale) * (1 + 100 / (2 * scale))
    assert sum(abs(e) <= 100 for e in errors) <= acceptance(200, near)[1], "the salary shows through"


def test_counts_stay_within_the_documented_accuracy(salaries: HostedTable) -> None:
    epsilon = 0.5
    noise = plan([Metric("count")], PrivacyTerms(to_micro(epsilon), to_micro(10.0), {}))
    count = noise.metrics[0].noise[0]
    # README: a discrete Laplace of scale b = 1/epsilon, and error_95 = b ln(2 / (0.05 (1 + q))), q = e^(-1/b).
    q = math.exp(-1 / count.scale)
    assert count.scale == pytest.approx(1 / epsilon)
    assert count.error == pytest.approx(count.scale * math.log(2 / (0.05 * (1 + q))))
    truth = exact(salaries, noise, [])
    answers = [release(truth, noise).groups[0]["count"] for _ in range(500)]
    # P(|X| > a) for the discrete Laplace is 2 q^(floor(a) + 1) / (1 + q): at most 5 %.
    outside = 2 * q ** (math.floor(count.error) + 1) / (1 + q)
    assert outside <= 0.05
    low, high = acceptance(500, outside)
    assert low <= sum(abs(a - 20) > count.error for a in answers) <= high


async def privacy_licence(shop: Market, **terms: Any) -> tuple[str, str]:
    product = await shop.product(
        delivery_modes=["privacy_computing"],
        computation={**COMPUTATION, **terms},
        fields=FIELDS,
        dataset=DISTRICT_DATASET,
    )
    key, body = await access_key(shop, await shop.paid_order(product, "privacy_computing"))
    return str(body["licence_id"]), key


async def ask(shop: Market, licence_id: str, key: str, *metrics: dict[str, Any]) -> Any:
    return await shop.api.client.post(
        f"/api/v1/data/{licence_id}/aggregate",
        json={"metrics": list(metrics) or [{"fn": "count"}]},
        headers={"Authorization": f"Bearer {key}"},
    )


async def usage_calls(shop: Market, licence_id: str) -> int:
    usage = await shop.api.client.get(f"/api/v1/licences/{licence_id}/usage", headers=shop.buyer.headers)
    return int(usage.json()["calls"])


@pytest.fixture
async def shop(api: Api) -> Market:
    return await open_market(api)


async def test_the_budget_runs_out_and_a_refused_call_spends_nothing(shop: Market) -> None:
    licence_id, key = await privacy_licence(shop, epsilon_per_query=1.0, epsilon_budget=3.0)
    first = (await ask(shop, licence_id, key)).json()["privacy"]
    assert (first["epsilon_spent"], first["budget"], first["budget_spent"], first["budget_left"]) == (1, 3, 1, 2)
    refused = await ask(shop, licence_id, key, {"fn": "min", "column": "amount"})
    assert refused.status_code == 422, refused.text
    assert (await ask(shop, licence_id, key)).json()["privacy"]["budget_spent"] == 2.0
    assert (await ask(shop, licence_id, key)).json()["privacy"]["budget_left"] == 0.0

    exhausted = await ask(shop, licence_id, key)
    assert exhausted.status_code == 403, exhausted.text
    problem = exhausted.json()
    assert problem["type"].endswith(":privacy-budget-exhausted")
    assert (problem["budget_epsilon"], problem["spent_epsilon"], problem["epsilon_per_query"]) == (3.0, 3.0, 1.0)
    assert "spent 3.0 of its privacy budget" in problem["detail"]
    assert await usage_calls(shop, licence_id) == 3  # neither refusal was metered


@pytest.mark.postgres
async def test_concurrent_calls_cannot_overspend_the_budget(shop: Market) -> None:
    licence_id, key = await privacy_licence(shop, epsilon_per_query=0.5, epsilon_budget=2.5)
    responses = await asyncio.gather(*(ask(shop, licence_id, key) for _ in range(20)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [403] * 15
    spent = sorted(r.json()["privacy"]["budget_spent"] for r in responses if r.status_code == 200)
    assert spent == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert await usage_calls(shop, licence_id) == 5


@pytest.mark.parametrize("changes", [{"epsilon_per_query": 0}, {"epsilon_budget": -1.0}, {"epsilon_budget": 1e6}])
async def test_epsilons_out_of_range_are_refused_by_the_schema(shop: Market, changes: dict[str, Any]) -> None:
    body = product_body(shop.provider_org["id"], computation={**COMPUTATION, **changes})
    refused = await shop.api.client.post("/api/v1/products", json=body, headers=shop.provider.headers)
    assert refused.status_code == 400, refused.text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bounds": {"amount": {"lower": 5, "upper": 5}}}, "lower must be below upper"),
        ({"bounds": {}}, "every measure column needs bounds; none for ['amount']"),
        ({"bounds": {"amount": {"lower": 0, "upper": 1}, "kind": {"lower": 0, "upper": 1}}}, "['kind'] are not"),
        ({"epsilon_per_query": 20.0}, "cannot exceed epsilon_budget"),
        ({"epsilon_budget": None}, "declared together"),
    ],
)
async def test_privacy_terms_that_do_not_fit_together_are_refused(
    shop: Market, changes: dict[str, Any], message: str
) -> None:
    """Each term alone is the schema's (400); how they fit together is judged before anything is saved (422)."""
    body = product_body(shop.provider_org["id"], computation={**COMPUTATION, **changes})
    refused = await shop.api.client.post("/api/v1/products", json=body, headers=shop.provider.headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith(":privacy-terms-inconsistent")
    assert message in str(refused.json()["errors"])
    created = await shop.api.client.post(
        "/api/v1/products", json={**body, "computation": COMPUTATION}, headers=shop.provider.headers
    )
    product = f"/api/v1/products/{created.json()['id']}"
    patched = await shop.api.client.patch(
        product, json={"computation": body["computation"]}, headers=shop.provider.headers
    )
    assert patched.status_code == 422, patched.text
    after = await shop.api.client.get(product, headers=shop.provider.headers)
    assert after.json()["details"]["computation"]["epsilon_per_query"] == COMPUTATION["epsilon_per_query"]


async def test_privacy_computing_without_privacy_terms_is_not_listed(shop: Market) -> None:
    terms = {"group_by": ["district"], "measure": ["amount"]}
    body = product_body(shop.provider_org["id"], delivery_modes=["privacy_computing"], computation=terms)
    created = await shop.api.client.post("/api/v1/products", json=body, headers=shop.provider.headers)
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    submitted = await shop.api.client.post(f"/api/v1/products/{product_id}/submit", headers=shop.provider.headers)
    result = submitted.json()
    assert result["status"] == "rejected"
    finding = next(f for f in result["verdict"]["findings"] if f["check"] == "R3.privacy-computing")
    assert finding["outcome"] == "fail"
    assert finding["evidence"]["problems"] == [
        "no epsilon per query and per licence",
        "no clamping bounds for ['amount']",
    ]

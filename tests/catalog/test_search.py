"""Searching the listed catalog: Chinese words inside titles, filters, facets, visibility."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.demo.factories import plan_body, product_body
from tests.catalog.test_products import CLEAN_SAMPLE, create, submit, upload
from tests.fixtures.api import Api, Person


async def listed(api: Api, owner: Person, organization_id: str, price: int, **changes: Any) -> dict[str, Any]:
    product = await create(api, owner, product_body(organization_id, **changes))
    plan = await api.client.post(
        f"/api/v1/products/{product['id']}/plans",
        json=plan_body(price, pricing_basis="market"),
        headers=owner.headers,
    )
    assert plan.status_code == 201, plan.text
    assert (await upload(api, owner, product["id"], "s.csv", CLEAN_SAMPLE, "text/csv")).status_code == 201
    await api.host_dataset(owner, product["id"])
    result = await submit(api, owner, product["id"])
    assert result["status"] == "listed", result["verdict"]["findings"]
    return product


@pytest.fixture
async def catalog(api: Api) -> dict[str, Any]:
    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    traffic = await listed(api, owner, organization["id"], 1_200_000)
    weather = await listed(
        api,
        owner,
        organization["id"],
        300_000,
        title="黔东南州逐小时气象观测 Qiandongnan hourly weather",
        description="Hourly observations from county stations.",
        tags=["气象", "weather"],
        category="meteorology",
        industry_code="7410",
        regions=["522600"],
        delivery_modes=["api"],
    )
    draft = await create(api, owner, product_body(organization["id"], title="未发布的草稿 路况 draft"))
    buyer = await api.person("Buyer")
    return {"owner": owner, "org": organization, "traffic": traffic, "weather": weather, "draft": draft, "buyer": buyer}


async def search(api: Api, who: Person, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/api/v1/products", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


@pytest.mark.parametrize("word", ["路况", "主干道", "贵阳", "实时路况", "guiyang", "GUIYANG", "traffic", "交通"])
async def test_a_chinese_title_is_found_by_a_word_inside_it(api: Api, catalog: dict[str, Any], word: str) -> None:
    page = await search(api, catalog["buyer"], q=word)
    assert ids(page) == [catalog["traffic"]["id"]]


async def test_drafts_are_never_found_and_unknown_words_find_nothing(api: Api, catalog: dict[str, Any]) -> None:
    assert ids(await search(api, catalog["buyer"], q="草稿")) == []
    assert ids(await search(api, catalog["buyer"], q="路贵")) == []
    everything = await search(api, catalog["buyer"])
    assert sorted(ids(everything)) == sorted([catalog["traffic"]["id"], catalog["weather"]["id"]])
    assert everything["total"] == 2


async def test_filters_and_facets(api: Api, catalog: dict[str, Any]) -> None:
    buyer = catalog["buyer"]
    assert ids(await search(api, buyer, category="meteorology")) == [catalog["weather"]["id"]]
    assert ids(await search(api, buyer, region="520100")) == [catalog["traffic"]["id"]]
    assert ids(await search(api, buyer, delivery_mode="file")) == [catalog["traffic"]["id"]]
    assert ids(await search(api, buyer, industry_code="7410")) == [catalog["weather"]["id"]]
    assert ids(await search(api, buyer, max_price=500_000)) == [catalog["weather"]["id"]]
    assert ids(await search(api, buyer, min_price=500_000, grade="general")) == [catalog["traffic"]["id"]]
    assert ids(await search(api, buyer, provider=catalog["org"]["id"], sort="price")) == [
        catalog["weather"]["id"],
        catalog["traffic"]["id"],
    ]
    assert ids(await search(api, buyer, sort="-price")) == [catalog["traffic"]["id"], catalog["weather"]["id"]]
    page = await search(api, buyer, q="气象")
    assert page["facets"] == {"category": {"meteorology": 1}, "grade": {"general": 1}}
    assert (await search(api, buyer))["facets"]["category"] == {"meteorology": 1, "transport": 1}


async def test_page_size_has_a_hard_maximum(api: Api, catalog: dict[str, Any]) -> None:
    response = await api.client.get("/api/v1/products", params={"limit": 201}, headers=catalog["buyer"].headers)
    assert response.status_code == 400
    page = await search(api, catalog["buyer"], limit=1, offset=1)
    assert (len(page["items"]), page["total"]) == (1, 2)


async def test_hostile_queries_are_harmless(api: Api, catalog: dict[str, Any]) -> None:
    for query in ['"', "a OR b", "NEAR(", "*", "' OR 1=1 --", "路况 AND", "😀", "\\"]:
        assert (await search(api, catalog["buyer"], q=query))["total"] >= 0


async def test_relevance_ranks_the_closer_match_first_and_pages_through_every_match(
    api: Api, catalog: dict[str, Any]
) -> None:
    buyer = catalog["buyer"]
    # "weather" three times in the title, tags and description beats one mention in a long text
    weather_only = await listed(
        api,
        catalog["owner"],
        catalog["org"]["id"],
        100_000,
        title="Weather weather weather",
        description="Weather station readings.",
        tags=["weather"],
        category="meteorology",
        industry_code="7410",
    )
    mention = await listed(
        api,
        catalog["owner"],
        catalog["org"]["id"],
        100_000,
        title="城市道路养护记录 road maintenance log",
        description="Road works per segment with contractor, cost, materials and dates. " * 5 + "Weather noted.",
    )
    page = await search(api, buyer, q="weather")
    assert page["total"] == 3
    assert ids(page)[0] == weather_only["id"]
    assert ids(page)[-1] == mention["id"]
    assert page["facets"] == {"category": {"meteorology": 2, "transport": 1}, "grade": {"general": 3}}
    one_at_a_time = [ids(await search(api, buyer, q="weather", limit=1, offset=offset)) for offset in range(3)]
    assert [found for (found,) in one_at_a_time] == ids(page)
    # text with another order: the dearest first, then the newest of equal price
    by_price = await search(api, buyer, q="weather", sort="-price")
    assert ids(by_price) == [catalog["weather"]["id"], mention["id"], weather_only["id"]]
    assert by_price["facets"] == page["facets"]
    beyond = await search(api, buyer, q="weather", offset=3)
    assert (beyond["items"], beyond["total"], beyond["facets"]) == ([], 3, page["facets"])


async def test_latin_words_match_as_prefixes_and_tolerate_one_typo(catalog: dict[str, Any], api: Api) -> None:
    buyer, traffic, weather = catalog["buyer"], catalog["traffic"]["id"], catalog["weather"]["id"]
    assert ids(await search(api, buyer, q="wea")) == [weather]
    assert ids(await search(api, buyer, q="Qiandong")) == [weather]
    assert ids(await search(api, buyer, q="weahter")) == [weather]  # two neighbours swapped
    assert ids(await search(api, buyer, q="obsrvations")) == [weather]  # a character dropped
    assert ids(await search(api, buyer, q="traffc")) == [traffic]
    assert ids(await search(api, buyer, q="trafficc guiyang")) == [traffic]  # one added
    assert ids(await search(api, buyer, q="wxyzq")) == []
    assert ids(await search(api, buyer, q="draft")) == []  # words of unlisted drafts are not found
    # characters that are query syntax to the databases are plain text: these are all "hourly"
    for query in ("hourly", "hourly*", '"hourly"', "hourly:*", "(hourly)", "hour*", "hourly & | !"):
        assert ids(await search(api, buyer, q=query)) == [weather], query

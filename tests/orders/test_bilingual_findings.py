"""The same rejected trade read in Chinese and in English: the same findings, each message whole in the language
the request asked for (Accept-Language), the answer saying which (Content-Language)."""

from __future__ import annotations

import re
from typing import Any

from tests.orders.conftest import Market

CJK = re.compile(r"[\u4e00-\u9fff]")
# A message id left untranslated would show as its id (`R1.buyer-scenario-...`) or as its English sentence.
MESSAGE_ID = re.compile(r"\b[RS]\d+\.[a-z0-9.-]+\b")
ENGLISH_WORDS = re.compile(r"\b(the|is|not|no|and|of|a)\b")


def in_chinese(message: str) -> bool:
    return bool(CJK.search(message)) and not MESSAGE_ID.search(message) and not ENGLISH_WORDS.search(message)


def in_english(message: str) -> bool:
    return not CJK.search(message) and not MESSAGE_ID.search(message)


def outcomes(findings: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(f["check"], f["outcome"], f["message_id"]) for f in findings]


async def test_a_rejected_trade_reads_the_same_in_chinese_and_in_english(market: Market) -> None:
    api = market.api
    placed = await market.place(scenario="credit_scoring")  # not a permitted scenario: R1 rejects the trade
    assert placed.status_code == 422, placed.text
    order_id = placed.json()["order_id"]

    read = {}
    for header, language in (("zh-CN", "zh-CN"), ("en", "en"), ("zh-Hans;q=0.9, en;q=0.8", "zh-CN")):
        headers = {**market.buyer.headers, "Accept-Language": header}
        response = await api.client.get(f"/api/v1/orders/{order_id}", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-language"] == language
        read[header] = response.json()["verdict"]

    chinese, english = read["zh-CN"]["findings"], read["en"]["findings"]
    assert read["zh-CN"]["decision"] == read["en"]["decision"] == "rejected"
    assert outcomes(chinese) == outcomes(english)
    assert read["zh-Hans;q=0.9, en;q=0.8"]["findings"] == chinese
    assert all(f["message_id"] for f in chinese)
    assert [m for m in (f["message"] for f in chinese) if not in_chinese(m)] == []
    assert [m for m in (f["message"] for f in english) if not in_english(m)] == []
    scenario = next(f for f in chinese if f["check"] == "R1.scenario")
    assert scenario["outcome"] == "fail"
    assert scenario["message"] == "买方的应用场景不在数据产品允许的场景之内"


async def test_the_rejection_itself_answers_in_the_language_asked(market: Market) -> None:
    headers = {**market.buyer.headers, "Accept-Language": "zh-CN"}
    response = await market.api.client.post(
        "/api/v1/orders", json=market.trade(scenario="credit_scoring"), headers=headers
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-language"] == "zh-CN"
    problem = response.json()
    assert problem["title"] == "交易未通过规则审查"
    assert [m for m in (f["message"] for f in problem["findings"]) if not in_chinese(m)] == []


async def test_the_default_language_serves_a_request_that_names_none_spoken(market: Market) -> None:
    headers = {**market.buyer.headers, "Accept-Language": "fr-FR, de;q=0.5"}
    preview = await market.api.client.post("/api/v1/compliance/preview", json=market.trade(), headers=headers)
    assert preview.headers["content-language"] == "en"
    assert all(in_english(f["message"]) for f in preview.json()["findings"])


async def test_problem_titles_follow_the_language_too(market: Market) -> None:
    response = await market.api.client.get("/api/v1/orders/not-an-id", headers={"Accept-Language": "zh"})
    assert response.headers["content-language"] == "zh-CN"
    assert CJK.search(response.json()["title"]), response.json()

"""Problems read in Chinese and in English: every human word of a failing request's answer (title, detail, each
invalid member's message) in the language asked for, never English inside a Chinese answer; the machine-readable
members (type, status, keys) the same in both."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from marketplace.kit.i18n import Language, catalog
from marketplace.web.messages import said_messages
from tests.fixtures.api import PASSWORD
from tests.orders.conftest import Market

CJK = re.compile(r"[\u4e00-\u9fff]")
# A run of English words: what a Chinese answer must not hold (a data value such as `paid` or `plan_id` is one word).
ENGLISH_SENTENCE = re.compile(r"\b[A-Za-z]+(?:[ ,;:'-]+[A-Za-z]+){2,}\b")

Request = Callable[[Market, dict[str, str]], Awaitable[httpx.Response]]


async def unknown_order(market: Market, language: dict[str, str]) -> httpx.Response:
    headers = {**market.buyer.headers, **language}
    return await market.api.client.get(f"/api/v1/orders/{uuid.uuid4()}", headers=headers)


async def email_taken(market: Market, language: dict[str, str]) -> httpx.Response:
    body = {"email": market.buyer.email, "password": PASSWORD, "name": "Again"}
    return await market.api.client.post("/api/v1/auth/register", json=body, headers=language)


async def plan_of_another_product(market: Market, language: dict[str, str]) -> httpx.Response:
    headers = {**market.buyer.headers, **language}
    return await market.api.client.post("/api/v1/orders", json=market.trade(plan_id=str(uuid.uuid4())), headers=headers)


async def malformed_order(market: Market, language: dict[str, str]) -> httpx.Response:
    headers = {**market.buyer.headers, **language}
    return await market.api.client.post("/api/v1/orders", json=market.trade(quantity="many"), headers=headers)


async def malformed_token(market: Market, language: dict[str, str]) -> httpx.Response:
    headers = {"Authorization": "Bearer not.a.token", **language}
    return await market.api.client.get("/api/v1/orders", headers=headers)


async def not_an_administrator(market: Market, language: dict[str, str]) -> httpx.Response:
    return await market.api.client.get("/api/v1/admin/audit", headers={**market.buyer.headers, **language})


async def too_many_logins(market: Market, language: dict[str, str]) -> httpx.Response:
    person = await market.api.person("Forgetful")  # each language its own account: the first is locked out after
    body = {"email": person.email, "password": "not the password"}
    limit = market.api.app.state.runtime.settings.login_max_failures_per_account
    for _ in range(limit):
        assert (await market.api.client.post("/api/v1/auth/token", json=body)).status_code == 401
    return await market.api.client.post("/api/v1/auth/token", json=body, headers=language)


async def no_such_path(market: Market, language: dict[str, str]) -> httpx.Response:
    return await market.api.client.get("/api/v1/no-such-thing", headers=language)


# request, status, problem type, the message id of its detail
CASES: list[tuple[Request, int, str, str]] = [
    (unknown_order, 404, "not-found", "orders.not-found"),
    (email_taken, 409, "conflict", "accounts.email-taken"),
    (plan_of_another_product, 422, "unprocessable", "orders.plan-not-listed"),
    (malformed_order, 400, "invalid-request", "request.invalid"),
    (malformed_token, 401, "not-authenticated", "auth.token-malformed"),
    (not_an_administrator, 403, "forbidden", "auth.administrators-only"),
    (too_many_logins, 429, "too-many-requests", "auth.too-many-failed-logins"),
    (no_such_path, 404, "not-found", "request.no-such-path"),
]
# Problems the framework raises: in English, its own words rather than the message's.
FRAMEWORK_WORDS = {no_such_path}
ENGLISH = said_messages()


def human_words(problem: dict[str, Any]) -> list[str]:
    return [problem["title"], problem["detail"], *(error["message"] for error in problem.get("errors") or [])]


@pytest.mark.parametrize(
    ("request_", "status", "code", "message_id"), CASES, ids=lambda c: getattr(c, "__name__", None)
)
async def test_a_problem_answers_whole_in_the_language_asked(
    market: Market, request_: Request, status: int, code: str, message_id: str
) -> None:
    chinese = await request_(market, {"Accept-Language": "zh-CN"})
    assert chinese.status_code == status, chinese.text
    assert chinese.headers["content-language"] == "zh-CN"
    problem = chinese.json()
    assert problem["type"] == f"urn:marketplace:problem:{code}"
    words = human_words(problem)
    assert [w for w in words if not CJK.search(w) or ENGLISH_SENTENCE.search(w)] == [], problem
    assert problem["detail"] == catalog(Language.ZH_CN)[message_id].format()  # these details have no values

    in_english = await request_(market, {"Accept-Language": "en"})
    assert in_english.status_code == status, in_english.text
    assert in_english.headers["content-language"] == "en"
    answer = in_english.json()
    assert answer["type"] == problem["type"]
    assert [w for w in human_words(answer) if CJK.search(w)] == [], answer
    if request_ not in FRAMEWORK_WORDS:
        assert answer["detail"] == ENGLISH[message_id]
    # the machine-readable members do not change with the language
    assert [e.get("key") for e in answer.get("errors") or []] == [e.get("key") for e in problem.get("errors") or []]


async def test_a_detail_with_values_keeps_them_inside_the_chinese_sentence(market: Market) -> None:
    order = await market.accepted_order()
    cancelled = await market.act(order["id"], "cancel", market.buyer)
    assert cancelled.status_code == 200, cancelled.text
    again = await market.api.client.post(
        f"/api/v1/orders/{order['id']}/cancel", headers={**market.buyer.headers, "Accept-Language": "zh-CN"}
    )
    assert again.status_code == 409, again.text
    detail = again.json()["detail"]
    assert CJK.search(detail), detail
    assert "cancelled" in detail, detail
    assert not ENGLISH_SENTENCE.search(detail), detail

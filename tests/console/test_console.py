"""The console through HTTP, on both databases: signing in with the API's accounts (administrators only, the same
throttle), the session cookie's attributes and expiry, CSRF on every form but not on the API, decisions through
the API's services, every page in both languages."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select, update
from sqlmodel import col

from marketplace.accounts.sessions import ConsoleSession
from marketplace.catalog.models import Product, ProductStatus
from marketplace.compliance.models import StoredVerdict
from marketplace.console.books import PROBLEMS_SHOWN
from marketplace.console.queries import FAILING_CHECKS_SHOWN
from marketplace.db import unit_of_work
from marketplace.demo import seed_demo
from marketplace.demo.seed import ADMIN_EMAIL, ADMIN_PASSWORD, MEMBER_PASSWORD
from marketplace.kit import clock
from marketplace.kit.money import major_units
from marketplace.ledger.models import AccountCode, LedgerAccount
from marketplace.orders.models import Order
from tests.fixtures.api import PASSWORD, Api

BUYER_EMAIL = "buyer@zunyi-logistics.example"
TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')


@pytest.fixture
async def visitor(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own: its cookies are one browser's."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def demo(api: Api) -> None:
    async with api.services() as services:
        await seed_demo(services, only_if_empty=True)


async def form_token(visitor: httpx.AsyncClient, path: str = "/console/sign-in") -> str:
    page = await visitor.get(path)
    found = TOKEN.search(page.text)
    assert found, page.text
    return found[1]


async def sign_in(visitor: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    token = await form_token(visitor)
    return await visitor.post(
        "/console/sign-in", data={"email": email, "password": password, "next": "/console/", "_csrf_token": token}
    )


async def test_pages_send_a_visitor_to_sign_in(visitor: httpx.AsyncClient) -> None:
    answer = await visitor.get("/console/trades?status=paid")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=%2Fconsole%2Ftrades%3Fstatus%3Dpaid"


async def test_an_administrator_signs_in_and_out(api: Api, visitor: httpx.AsyncClient) -> None:
    admin = await api.admin()
    signed = await sign_in(visitor, admin.email, PASSWORD)
    assert signed.status_code == 303, signed.text
    assert signed.headers["location"] == "/console/"
    cookie = signed.headers["set-cookie"].lower()
    assert "console_session=" in cookie
    assert all(part in cookie for part in ("httponly", "samesite=strict", "path=/console", "max-age=43200"))
    assert "secure" not in cookie  # plain http, CONSOLE_SECURE_COOKIE=auto
    assert (await visitor.get("/console/")).status_code == 200

    token = await form_token(visitor, "/console/")
    out = await visitor.post("/console/sign-out", data={"_csrf_token": token})
    assert out.status_code == 303
    async with unit_of_work(api.sessions) as session:
        assert (await session.scalars(select(ConsoleSession))).all() == []
    assert (await visitor.get("/console/")).status_code == 303


async def test_the_cookie_is_secure_over_https(app: Litestar, api: Api) -> None:
    admin = await api.admin()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as secure:
        signed = await sign_in(secure, admin.email, PASSWORD)
    assert signed.status_code == 303
    assert "secure" in signed.headers["set-cookie"].lower()


async def test_a_buyer_is_told_the_console_is_for_administrators(demo: None, visitor: httpx.AsyncClient) -> None:
    refused = await sign_in(visitor, BUYER_EMAIL, MEMBER_PASSWORD)
    assert refused.status_code == 403
    assert "platform administrators only" in refused.text
    assert "console_session" not in refused.headers.get("set-cookie", "")
    assert (await visitor.get("/console/")).status_code == 303


async def test_failed_sign_ins_are_throttled_like_the_api(api: Api, visitor: httpx.AsyncClient) -> None:
    admin = await api.admin()
    for _ in range(5):  # LOGIN_MAX_FAILURES_PER_ACCOUNT
        assert (await sign_in(visitor, admin.email, "wrong")).status_code == 401
    throttled = await sign_in(visitor, admin.email, PASSWORD)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1
    # the API counts the same failures
    token = await api.client.post("/api/v1/auth/token", json={"email": admin.email, "password": PASSWORD})
    assert token.status_code == 429


async def test_a_post_without_its_csrf_token_is_refused(api: Api, visitor: httpx.AsyncClient) -> None:
    admin = await api.admin()
    await form_token(visitor)  # the CSRF cookie is set
    refused = await visitor.post("/console/sign-in", data={"email": admin.email, "password": "x"})
    assert refused.status_code == 403
    assert "security token" in refused.text
    forged = await visitor.post(
        "/console/sign-in", data={"email": admin.email, "password": "x", "_csrf_token": "0" * 128}
    )
    assert forged.status_code == 403
    # the API's bearer-token routes need no CSRF token
    assert (await api.client.get("/api/v1/admin/ledger/check", headers=admin.headers)).status_code == 200


async def test_an_idle_or_old_session_ends(api: Api, visitor: httpx.AsyncClient) -> None:
    admin = await api.admin()
    await sign_in(visitor, admin.email, PASSWORD)
    for column in ("last_seen_at", "created_at"):
        assert (await visitor.get("/console/ledger")).status_code == 200
        async with unit_of_work(api.sessions) as session:
            await session.execute(update(ConsoleSession).values({column: clock.now() - timedelta(days=1)}))
        assert (await visitor.get("/console/ledger")).status_code == 303
        await sign_in(visitor, admin.email, PASSWORD)


async def test_a_listing_decision_needs_a_reason_and_goes_through_the_listing_service(
    demo: None, api: Api, visitor: httpx.AsyncClient
) -> None:
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with unit_of_work(api.sessions) as session:
        held = (await session.scalars(select(Product).where(col(Product.status) == ProductStatus.UNDER_REVIEW))).first()
    assert held is not None
    item = await visitor.get(f"/console/products/{held.id}")
    assert item.status_code == 200
    assert "/decision" in item.text
    assert "rulebook" in item.text.lower()
    token = TOKEN.search(item.text)
    assert token
    missing = await visitor.post(
        f"/console/products/{held.id}/decision", data={"decision": "approve", "reason": "", "_csrf_token": token[1]}
    )
    assert missing.status_code == 400
    assert "reason" in missing.text
    async with unit_of_work(api.sessions) as session:
        assert (await session.get(Product, held.id)).status == ProductStatus.UNDER_REVIEW  # type: ignore[union-attr]
    decided = await visitor.post(
        f"/console/products/{held.id}/decision",
        data={"decision": "reject", "reason": "the samples do not match the schema", "_csrf_token": token[1]},
    )
    assert decided.status_code == 303
    async with unit_of_work(api.sessions) as session:
        assert (await session.get(Product, held.id)).status == ProductStatus.REJECTED  # type: ignore[union-attr]
    entries = await api.client.get(
        "/api/v1/admin/audit",
        params={"object_type": "product", "object_id": str(held.id)},
        headers={"Authorization": f"Bearer {await api.token(ADMIN_EMAIL, ADMIN_PASSWORD)}"},
    )
    assert any("the samples do not match" in str(e["payload"]) for e in entries.json()["items"])
    again = await visitor.post(
        f"/console/products/{held.id}/decision",
        data={"decision": "approve", "reason": "changed my mind", "_csrf_token": token[1]},
    )
    assert again.status_code == 409


PAGES = [
    "/console/",
    "/console/queues/admissions",
    "/console/queues/listings",
    "/console/queues/trades",
    "/console/queues/licences",
    "/console/queues/disputes",
    "/console/trades",
    "/console/trades?status=paid_out&outcome=accepted&since=2020-01-01&until=2099-12-31",
    "/console/audit",
    "/console/ledger",
    "/console/rules",
]


async def test_every_page_reads_in_both_languages_and_the_choice_is_remembered(
    demo: None, visitor: httpx.AsyncClient
) -> None:
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    trades = await visitor.get("/console/trades")
    trade = re.search(r'href="(/console/trades/[0-9a-f-]{36})"', trades.text)
    assert trade
    for language, marker in (("en", "Sign out"), ("zh-CN", "退出登录")):
        token = await form_token(visitor, "/console/")
        chosen = await visitor.post(
            "/console/language", data={"language": language, "next": "/console/ledger", "_csrf_token": token}
        )
        assert chosen.status_code == 303
        assert chosen.headers["location"] == "/console/ledger"
        for path in [*PAGES, trade[1]]:
            page = await visitor.get(path)
            assert page.status_code == 200, (path, page.text)
            assert f'<html lang="{language}">' in page.text
            assert page.headers["content-language"] == language
            assert marker in page.text, path
            assert "content-security-policy" in page.headers


async def test_a_language_switch_never_sends_the_browser_elsewhere(api: Api, visitor: httpx.AsyncClient) -> None:
    token = await form_token(visitor)
    chosen = await visitor.post(
        "/console/language", data={"language": "en", "next": "https://elsewhere.example/", "_csrf_token": token}
    )
    assert chosen.headers["location"] == "/console"


async def test_the_csv_export_is_the_apis(demo: None, api: Api, visitor: httpx.AsyncClient) -> None:
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    console = await visitor.get("/console/trades/export", params={"status": "paid_out"})
    headers = {"Authorization": f"Bearer {await api.token(ADMIN_EMAIL, ADMIN_PASSWORD)}"}
    exported = await api.client.get("/api/v1/admin/trades/export", params={"status": "paid_out"}, headers=headers)
    assert console.status_code == 200
    assert console.headers["content-type"].startswith("text/csv")
    assert console.text == exported.text
    assert len(console.text.splitlines()) == 2


async def test_bad_filters_are_a_page_saying_so_not_an_error(demo: None, visitor: httpx.AsyncClient) -> None:
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    for query in ("status=nonsense", "buyer=not-an-id", "since=yesterday", "rule_id=R1'--", "offset=-1"):
        answer = await visitor.get(f"/console/trades?{query}")
        assert answer.status_code == 400, query
        assert "<html" in answer.text
    assert (await visitor.get("/console/queues/everything")).status_code == 400


async def test_a_candidate_rulebook_is_analysed_and_a_broken_one_refused(
    demo: None, visitor: httpx.AsyncClient
) -> None:
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    token = await form_token(visitor, "/console/rules")
    candidate = b'[rules.R5]\nseverity = "block"\n[rules.R5.parameters]\nprice_deviation_band_bps = 1\n'
    analysed = await visitor.post(
        "/console/rules/impact", data={"_csrf_token": token}, files={"rulebook": ("candidate.toml", candidate)}
    )
    assert analysed.status_code == 200, analysed.text
    assert "subjects judged again" in analysed.text
    broken = await visitor.post(
        "/console/rules/impact", data={"_csrf_token": token}, files={"rulebook": ("bad.toml", b"[rules.R99]\n")}
    )
    assert broken.status_code == 400
    assert "R99" in broken.text


async def test_the_chain_is_verified_from_the_audit_page(demo: None, visitor: httpx.AsyncClient) -> None:
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    token = await form_token(visitor, "/console/audit")
    report = await visitor.post("/console/audit/verify", data={"_csrf_token": token})
    assert report.status_code == 200
    assert re.search(r"The log is intact: [1-9]\d* entries recomputed, every signed tree head matches", report.text)


async def test_the_audit_page_shows_the_latest_signed_tree_size(demo: None, visitor: httpx.AsyncClient) -> None:
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = await visitor.get("/console/audit")
    assert re.search(r"The latest signed tree head holds [1-9]\d* entries", page.text)


async def test_admin_and_dashboard_lead_to_the_console(visitor: httpx.AsyncClient) -> None:
    for path in ("/admin", "/dashboard"):
        answer = await visitor.get(path)
        assert (answer.status_code, answer.headers["location"]) == (302, "/console/")


# A row of the overview's table of the checks that fail most: rule, check, failures.
FAILING_ROW = re.compile(r'rule_id=[^"]+">([^<]+)</a></td><td><code>([^<]+)</code></td><td class="number">(\d+)</td>')


async def test_the_overview_ranks_the_checks_the_verdicts_failed_and_reads_the_books_totals(
    demo: None, api: Api, visitor: httpx.AsyncClient
) -> None:
    """The failed checks each verdict stores are its failed findings', and the overview counts exactly those."""
    async with api.services() as services:
        verdicts = (await services.session.scalars(select(StoredVerdict))).all()
        order = (await services.session.scalars(select(Order))).first()
    assert order is not None
    failures: Counter[tuple[str, str]] = Counter()
    for verdict in verdicts:
        failed = [{"rule_id": f["rule_id"], "check": f["check"]} for f in verdict.findings if f["outcome"] == "fail"]
        assert verdict.failed_checks == failed
        failures.update((f["rule_id"], f["check"]) for f in failed)
    assert failures, "the demo's rejected submissions"
    ranked = sorted(failures.items(), key=lambda item: (-item[1], item[0]))[:FAILING_CHECKS_SHOWN]

    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    overview = await visitor.get("/console/")
    shown = [((rule, check), int(count)) for rule, check, count in FAILING_ROW.findall(overview.text)]
    assert shown == ranked
    assert re.search(r"Debits equal credits \(account totals\) <strong class=\"badge accepted\">", overview.text)
    trade = await visitor.get(f"/console/trades/{order.id}")
    assert f"{order.currency} {major_units(order.amount_minor, order.currency)}" in trade.text


async def test_the_ledger_page_lists_so_many_problems_and_counts_the_rest(
    demo: None, api: Api, visitor: httpx.AsyncClient
) -> None:
    """Escrow accounts holding money no order or transfer accounts for: each is a mismatched account and an
    escrow mismatch; the overview's totals see the books no longer balance."""
    count = PROBLEMS_SHOWN + 3
    async with api.services() as services:
        for _ in range(count):
            order_id = uuid.uuid4()
            services.session.add(
                LedgerAccount(
                    key=f"escrow:{order_id}:CNY",
                    code=AccountCode.ESCROW,
                    order_id=order_id,
                    currency="CNY",
                    no_overdraft=True,
                    credits_posted=100,
                )
            )
    await sign_in(visitor, ADMIN_EMAIL, ADMIN_PASSWORD)
    ledger = await visitor.get("/console/ledger")
    assert ledger.status_code == 200
    assert ledger.text.count("/console/trades/") == PROBLEMS_SHOWN
    assert ledger.text.count("… and 3 more of this kind.") == 2  # mismatched accounts, escrow mismatches
    assert "Escrow holds 1.00 CNY, the order says 0.00:" in ledger.text
    overview = await visitor.get("/console/")
    assert re.search(r"Debits equal credits \(account totals\) <strong class=\"badge rejected\">", overview.text)

"""The console in a real browser (Debian's chromium, driven by Playwright) against a real `marketplace serve` over
the demo's database: the administrators' journeys, a buyer refused, a form posted without its CSRF token refused,
every request the pages make answered by the server under test, no serious or critical axe-core violation on any
page, and a screenshot of every page in both languages (tests/console/screenshots/, not committed).

SQLite pass only (`browser` marker): one server and one browser for the module, about half a minute."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, BrowserType, Page, Playwright, expect, sync_playwright

from marketplace.demo.seed import ADMIN_EMAIL, ADMIN_PASSWORD, MEMBER_PASSWORD
from marketplace.web.docs import PACKAGES

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
AXE = PACKAGES / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
BUYER_EMAIL = "buyer@zunyi-logistics.example"
LANGUAGES = {"en": "English", "zh-CN": "中文"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(autouse=True)
def empty_database() -> None:
    """The suite's database is not this server's: nothing to empty. (The suite's fixture is asynchronous, and
    Playwright's synchronous API holds the event loop while these tests run.)"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`marketplace serve` on a free loopback port, over a database the demo command seeded."""
    if not CHROMIUM.exists() or not AXE.exists():
        pytest.fail("the browser tests need /usr/bin/chromium and the web assets (make installs both)")
    home = tmp_path_factory.mktemp("console-server")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{home / 'console.db'}",
        "STORAGE_DIR": str(home / "var"),
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "marketplace.cli"]
    for step in (["db", "upgrade"], ["demo"]):
        subprocess.run([*command, *step], env=env, cwd=home, check=True, capture_output=True)
    port = free_port()
    serving = subprocess.Popen([*command, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=home)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or serving.poll() is not None:
                pytest.fail("marketplace serve did not start")
            time.sleep(0.25)
        yield base
    finally:
        serving.terminate()
        serving.wait(timeout=30)


# pytest-playwright's driver and browser, for this module only: the synchronous driver runs an event loop until
# it stops, and the suite's asynchronous tests that follow on this worker need theirs.


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    driver = sync_playwright().start()
    yield driver
    driver.stop()


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return cast(BrowserType, getattr(playwright, browser_name))


@pytest.fixture(scope="module")
def browser(browser_type: BrowserType, browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    launched = browser_type.launch(**browser_type_launch_args)
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium: Playwright's own browser download is not available."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture
def browser_context_args(server: str) -> dict[str, Any]:
    """Every context on the server under test (pytest-playwright's own arguments would start its driver)."""
    return {"base_url": server, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def requests_made(context: BrowserContext) -> list[str]:
    made: list[str] = []
    context.on("request", lambda request: made.append(request.url))
    return made


def check_accessible(page: Page) -> None:
    """axe-core, from the npm package, run on the page as it stands: no serious or critical violation."""
    page.evaluate(AXE.read_text())
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [
        {"rule": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, json.dumps(serious, indent=2, ensure_ascii=False)


def shoot(page: Page, name: str, language: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.{language}.png", full_page=True)


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/console/")
    page.get_by_label(re.compile("E-mail|电子邮箱")).fill(email)
    page.get_by_label(re.compile("^(Password|密码)$")).fill(password)
    page.get_by_role("button", name=re.compile("^(Sign in|登录)$")).click()


def choose_language(page: Page, language: str) -> None:
    switch = page.get_by_role("button", name=LANGUAGES[language])
    if switch.count():
        switch.click()
    expect(page.locator("html")).to_have_attribute("lang", language)


def test_a_buyer_cannot_sign_in(page: Page, server: str) -> None:
    sign_in(page, BUYER_EMAIL, MEMBER_PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("platform administrators only")
    page.goto("/console/ledger")
    expect(page).to_have_url(re.compile("/console/sign-in"))
    check_accessible(page)
    shoot(page, "sign-in-refused", "en")


def test_a_form_posted_without_its_csrf_token_is_refused(page: Page, server: str) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Overview|总览"))
    # the cookies go along (same origin), the form's token does not
    refused = page.request.post("/console/sign-out", form={"next": "/console/"})
    assert refused.status == 403
    page.goto("/console/ledger")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Ledger|账本"))


PAGES = {
    "overview": "/console/",
    "queue-admissions": "/console/queues/admissions",
    "queue-listings": "/console/queues/listings",
    "queue-trades": "/console/queues/trades",
    "queue-licences": "/console/queues/licences",
    "queue-disputes": "/console/queues/disputes",
    "trades": "/console/trades",
    "audit": "/console/audit",
    "ledger": "/console/ledger",
    "rules": "/console/rules",
}


def test_every_page_in_both_languages_is_accessible_and_local(
    page: Page, server: str, requests_made: list[str]
) -> None:
    page.goto("/console/sign-in")
    for language in LANGUAGES:
        choose_language(page, language)
        check_accessible(page)
        shoot(page, "sign-in", language)
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto("/console/trades")
    trade = page.locator("a[href^='/console/trades/']").filter(has_text=re.compile("^[0-9a-f-]{36}$")).first
    pages = {**PAGES, "trade": trade.get_attribute("href") or ""}
    page.goto("/console/queues/listings")
    pages["listing"] = page.locator("main table a").first.get_attribute("href") or ""
    for language in LANGUAGES:
        choose_language(page, language)
        for name, path in pages.items():
            page.goto(path)
            if name == "overview":  # the charts are drawn from the page's figures
                expect(page.locator("#chart-trades canvas")).to_be_visible()
                expect(page.locator("#chart-failing canvas")).to_be_visible()
            check_accessible(page)
            shoot(page, name, language)
    assert requests_made
    assert all(url.startswith(server + "/") for url in requests_made), {
        url for url in requests_made if not url.startswith(server + "/")
    }


def test_an_administrator_decides_filters_exports_verifies_and_analyses(
    page: Page, server: str, requests_made: list[str], tmp_path: Path
) -> None:
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    choose_language(page, "en")

    # a listing held for review: its verdict, then a decision that needs its reason
    page.get_by_role("link", name="Listings").first.click()
    page.locator("main table a").first.click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible()
    expect(page.get_by_text("Rulebook fingerprint")).to_be_visible()
    page.get_by_label("Reject").check()
    page.get_by_label(re.compile("^Reason")).fill("the sample does not support the declared quality")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.locator("main")).to_contain_text("rejected")
    expect(page.get_by_role("button", name="Record the decision")).to_have_count(0)

    # trades: a filter swaps the table in place (htmx) and the address keeps it
    page.goto("/console/trades")
    page.get_by_label("Status").select_option("paid_out")
    expect(page).to_have_url(re.compile(r"status=paid_out"))
    expect(page.get_by_role("table").locator("caption")).to_have_text("1 trades")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download these trades as CSV").click()
    exported = Path(download.value.path()).read_text().splitlines()
    assert exported[0].startswith("id,created_at,status")
    assert len(exported) == 2
    assert ",paid_out," in exported[1]

    # the trade: its verdict, history, ledger movements, licence, receipts and audit entries
    page.get_by_role("table").locator("a[href^='/console/trades/']").first.click()
    for heading in ("Verdict", "History", "Ledger movements", "Licence and delivery", "Audit trail"):
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(page.locator("main")).to_contain_text("escrow:")

    # the transparency log, verified in place
    page.goto("/console/audit")
    page.get_by_role("button", name="Verify the whole log").click()
    expect(page.locator("#chain-report")).to_contain_text("The log is intact")
    expect(page).to_have_url(re.compile("/console/audit$"))

    # a candidate rulebook's impact
    candidate = tmp_path / "candidate.toml"
    candidate.write_text('[rules.R5]\nseverity = "block"\n[rules.R5.parameters]\nprice_deviation_band_bps = 1\n')
    page.goto("/console/rules")
    page.get_by_label("Candidate rulebook file").set_input_files(candidate)
    page.get_by_role("button", name="Analyse").click()
    expect(page.get_by_role("status")).to_contain_text("subjects judged again")
    check_accessible(page)
    shoot(page, "rules-impact", "en")

    # the language is remembered, and signing out ends the session
    choose_language(page, "zh-CN")
    page.goto("/console/ledger")
    expect(page.get_by_role("heading", level=1)).to_have_text("账本")
    page.get_by_role("button", name="退出登录").click()
    page.goto("/console/ledger")
    expect(page).to_have_url(re.compile("/console/sign-in"))
    assert all(url.startswith(server + "/") for url in requests_made)

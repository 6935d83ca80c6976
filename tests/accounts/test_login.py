"""Login: one answer for unknown account and wrong password; throttling of failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import LoginFailure
from marketplace.kit import clock
from tests.fixtures.api import PASSWORD, Api


async def login(api: Api, email: str, password: str) -> tuple[int, dict[str, str], dict[str, str]]:
    response = await api.client.post("/api/v1/auth/token", json={"email": email, "password": password})
    return response.status_code, dict(response.headers), response.json()


async def test_unknown_account_and_wrong_password_look_the_same(api: Api) -> None:
    person = await api.person("Bob")
    unknown = await login(api, "nobody@example.com", PASSWORD)
    wrong = await login(api, person.email, "not the password")
    assert unknown[0] == wrong[0] == 401
    assert unknown[2]["detail"] == wrong[2]["detail"]
    assert unknown[2]["type"] == wrong[2]["type"]


async def test_sixth_failed_login_within_a_minute_answers_429(api: Api) -> None:
    person = await api.person("Carol")
    for _ in range(5):
        status, _, _ = await login(api, person.email, "wrong password!")
        assert status == 401
    status, headers, body = await login(api, person.email, PASSWORD)
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 60
    assert body["type"].endswith("too-many-requests")


async def test_failures_expire_after_the_window(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    person = await api.person("Dan")
    for _ in range(5):
        assert (await login(api, person.email, "wrong password!"))[0] == 401
    later = clock.now() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert (await login(api, person.email, PASSWORD))[0] == 200


async def test_success_clears_the_accounts_failures(api: Api) -> None:
    person = await api.person("Erin")
    for _ in range(4):
        assert (await login(api, person.email, "wrong password!"))[0] == 401
    assert (await login(api, person.email, PASSWORD))[0] == 200
    for _ in range(4):
        assert (await login(api, person.email, "wrong password!"))[0] == 401
    assert (await login(api, person.email, PASSWORD))[0] == 200


async def test_one_address_is_throttled_across_accounts(api: Api) -> None:
    limit = api.app.state.runtime.settings.login_max_failures_per_address
    for n in range(limit):
        assert (await login(api, f"guess{n}@example.com", "wrong password!"))[0] == 401
    assert (await login(api, "guess-next@example.com", "wrong password!"))[0] == 429


async def test_failed_logins_are_stored_without_personal_data(api: Api) -> None:
    await login(api, "someone@example.com", "wrong password!")
    async with api.sessions() as session:
        rows = (await session.scalars(select(LoginFailure))).all()
        count = (await session.execute(select(func.count()).select_from(LoginFailure))).scalar_one()
    assert count == 2  # one for the account, one for the address
    assert all("someone" not in row.subject and len(row.subject) == 64 for row in rows)

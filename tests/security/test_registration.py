"""Hole 7, registration: it had no throttle and hashed the password on the event loop, so twenty
registrations at once stalled every other request. Registrations are throttled per client address, as
logins are, and argon2 runs in a worker thread."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar

from marketplace.accounts import credentials
from marketplace.app import create_app
from marketplace.config import Settings

LIMIT = 3


@pytest.fixture
async def throttled(settings: Settings, app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The application as deployed: a few registrations per address (the suite's own app allows many)."""
    strict = create_app(settings.model_copy(update={"registration_max_per_address": LIMIT, "database_pool_size": 2}))
    transport = httpx.ASGITransport(app=strict, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await strict.state.runtime.stop()


def body() -> dict[str, str]:
    return {"email": f"p.{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery staple", "name": "P"}


async def test_an_address_gets_a_few_registrations_then_429(throttled: httpx.AsyncClient, app: Litestar) -> None:
    for _ in range(LIMIT):
        assert (await throttled.post("/api/v1/auth/register", json=body())).status_code == 201
    refused_body = body()
    refused = await throttled.post("/api/v1/auth/register", json=refused_body)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["type"].endswith(":too-many-requests")
    login = await throttled.post("/api/v1/auth/token", json={k: refused_body[k] for k in ("email", "password")})
    assert login.status_code == 401  # the refused account was not created


async def test_hashing_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow hash in the worker thread leaves the loop free: a ticker keeps ticking meanwhile."""

    class SlowHasher:
        def hash(self, password: str) -> str:
            time.sleep(0.3)
            return f"slow:{password}"

    monkeypatch.setattr(credentials, "_hasher", SlowHasher())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(credentials.hash_password("pw") for _ in range(3)))
    task.cancel()
    # On the loop, the three hashes would block it for 0.9 s and the ticker would not tick at all; off it,
    # it ticks about 30 times (a loaded machine gives fewer, never none).
    assert ticks >= 3, ticks

"""Mutated download links through the download endpoint: every one refused, the valid one works.

The signature itself is tested on its own (test_links.py); here the database's part is exercised too:
a link correctly signed for another person, for a revoked licence, or under a key the service does not
hold is refused, as is any change to a signed field or an expiry one second in the past."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar

from marketplace.delivery.links import DownloadKeyring, InvalidLink
from marketplace.kit import clock
from tests.catalog.test_products import CLEAN_SAMPLE
from tests.delivery.conftest import Market

SIGNED_FIELDS = ("user", "sha256", "expires", "kid", "sig", "licence")


class Links:
    def __init__(self, market: Market, keyring: DownloadKeyring, licence_id: str, revoked_id: str, sha: str) -> None:
        self.market, self.keyring = market, keyring
        self.licence_id, self.revoked_id, self.sha = licence_id, revoked_id, sha

    def signed(self, licence_id: str, user_id: str, *, keyring: DownloadKeyring | None = None, age: int = 0) -> str:
        ttl = 900
        link = (keyring or self.keyring).sign(
            uuid.UUID(licence_id), uuid.UUID(user_id), self.sha, clock.now() - timedelta(seconds=age), ttl
        )
        return f"/api/v1/downloads/{licence_id}?{urlencode(link.params)}"

    async def status(self, url: str) -> int:
        return (await self.market.api.client.get(url)).status_code


@pytest.fixture
async def links(market: Market, app: Litestar, tmp_path: Path) -> Links:
    product = await market.product()
    dataset = await market.host(product)
    kept = await market.paid_order(product)
    refunded = await market.paid_order(product)
    for url, body, who in (
        (f"/api/v1/orders/{refunded}/dispute", {"reason": "wrong data"}, market.buyer),
        (f"/api/v1/admin/orders/{refunded}/resolve-dispute", {"outcome": "refund", "reason": "agreed"}, market.admin),
    ):
        assert (await market.api.client.post(url, json=body, headers=who.headers)).status_code == 200
    revoked = await market.licence(refunded)
    assert revoked["status"] == "revoked"
    return Links(
        market, app.state.runtime.download_keyring, (await market.licence(kept))["id"], revoked["id"], dataset["sha256"]
    )


def mutated(params: dict[str, str], field: str, data: st.DataObject) -> tuple[dict[str, str], str | None]:
    """One signed field changed to another value of the same shape (the path's licence id included)."""
    changed, licence = dict(params), None
    if field == "user":
        changed["user"] = str(data.draw(st.uuids().filter(lambda u: str(u) != params["user"])))
    elif field == "sha256":
        position = data.draw(st.integers(0, 63))
        digit = data.draw(st.sampled_from("0123456789abcdef").filter(lambda d: d != params["sha256"][position]))
        changed["sha256"] = params["sha256"][:position] + digit + params["sha256"][position + 1 :]
    elif field == "expires":
        changed["expires"] = str(int(params["expires"]) + data.draw(st.integers(-600, 600).filter(bool)))
    elif field == "kid":
        changed["kid"] = data.draw(
            st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True).filter(lambda k: k != params["kid"])
        )
    elif field == "sig":
        # Drawn without looking at the signature, which changes with the clock: hypothesis replays draws.
        raw = bytearray(params["sig"].encode())
        position = data.draw(st.integers(0, len(raw) - 1))
        replacement = ord(data.draw(st.sampled_from("AQgw")))
        raw[position] = replacement if replacement != raw[position] else ord("B")
        changed["sig"] = raw.decode()
    else:
        licence = str(data.draw(st.uuids()))
    return changed, licence


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(
        ["valid", "expired", "field", "another user", "revoked", "unknown key", "same kid, other secret"]
    ),
    field=st.sampled_from(SIGNED_FIELDS),
    data=st.data(),
)
async def test_every_mutated_link_is_refused_and_the_valid_one_works(
    links: Links, market: Market, tmp_path: Path, kind: str, field: str, data: st.DataObject
) -> None:
    buyer = market.buyer.id
    if kind == "valid":
        response = await market.api.client.get(links.signed(links.licence_id, buyer))
        assert response.status_code == 200
        assert response.content == CLEAN_SAMPLE
        return
    if kind == "expired":
        url = links.signed(links.licence_id, buyer, age=901)  # expired one second ago
    elif kind == "field":
        params = urlsplit(links.signed(links.licence_id, buyer)).query
        changed, licence = mutated(dict(parse_qsl(params)), field, data)
        url = f"/api/v1/downloads/{licence or links.licence_id}?{urlencode(changed)}"
    elif kind == "another user":
        url = links.signed(links.licence_id, data.draw(st.sampled_from([market.provider.id, market.admin.id])))
    elif kind == "revoked":
        url = links.signed(links.revoked_id, buyer)
    elif kind == "unknown key":
        other = DownloadKeyring({"rogue": secrets.token_bytes(32)}, "rogue")
        url = links.signed(links.licence_id, buyer, keyring=other)
    else:
        other = DownloadKeyring({links.keyring.current_key_id: secrets.token_bytes(32)}, links.keyring.current_key_id)
        url = links.signed(links.licence_id, buyer, keyring=other)
    response = await market.api.client.get(url)
    assert response.status_code == 403, (kind, field, url, response.text)
    assert response.content != CLEAN_SAMPLE
    assert response.json()["detail"] == "the download link is invalid or has expired" or kind == "revoked"


def test_a_rotated_key_still_verifies_links_signed_before_the_rotation(tmp_path: Path) -> None:
    licence = uuid.uuid4()
    link = DownloadKeyring.load(tmp_path, "k1").sign(licence, uuid.uuid4(), "a" * 64, clock.now(), 60)
    rotated = DownloadKeyring.load(tmp_path, "k2")
    assert rotated.current_key_id == "k2"
    assert rotated.verify(licence, link.params, clock.now()).key_id == "k1"
    assert rotated.sign(licence, uuid.uuid4(), "a" * 64, clock.now(), 60).params["kid"] == "k2"
    (tmp_path / "download-k1.key").unlink()  # retiring the old key kills its links
    with pytest.raises(InvalidLink):
        DownloadKeyring.load(tmp_path, "k2").verify(licence, link.params, clock.now())

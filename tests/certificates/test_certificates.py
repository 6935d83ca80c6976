"""Trade certificates: issued for completed orders to their parties and administrators, kept, printable in two
languages, and verified offline with the JWKS alone (`marketplace verify-certificate`): any changed byte, another
tree head, a tampered log entry or a certificate signed by a key of the set that is not the notary's fails; after a
rotation of the notary's key, certificates signed by the retired key still verify."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from marketplace.audit import transparency
from marketplace.certificates.verification import CERTIFICATE_TYPE, TREE_HEAD_TYPE, verify
from marketplace.jobs import sequence_audit
from marketplace.kit import jws
from marketplace.kit.jws import Notary
from tests.fixtures.api import Person
from tests.orders.conftest import PRICE_MINOR, Market
from tests.orders.test_settlement_api import refund


async def completed_order(market: Market) -> str:
    order = await market.accepted_order()
    assert (await market.act(order["id"], "pay", market.buyer)).status_code == 200
    await market.take_delivery(order["id"])
    assert (await market.act(order["id"], "confirm", market.buyer)).status_code == 200
    return str(order["id"])


async def certificate_of(market: Market, order_id: str, who: Person, **params: str) -> Any:
    return await market.api.client.get(f"/api/v1/orders/{order_id}/certificate", params=params, headers=who.headers)


async def jwks(market: Market) -> dict[str, Any]:
    return dict((await market.api.client.get("/.well-known/jwks.json")).json())


@pytest.fixture
async def certified(market: Market) -> tuple[str, dict[str, Any]]:
    """A completed order, its completion in the log, and its certificate as the buyer gets it."""
    order_id = await completed_order(market)
    await sequence_audit(market.api.runtime())
    answer = await certificate_of(market, order_id, market.buyer)
    assert answer.status_code == 200, answer.text
    return order_id, answer.json()


async def test_a_certificate_states_the_trade_and_verifies_with_the_public_keys_alone(
    market: Market, certified: tuple[str, dict[str, Any]]
) -> None:
    order_id, answer = certified
    payload = answer["payload"]
    assert payload["order"]["id"] == order_id
    assert payload["buyer"]["uscc"] == market.buyer_org["uscc"]
    assert payload["provider"]["uscc"] == market.provider_org["uscc"]
    assert payload["intermediary"] is None
    assert (payload["amount"], payload["scenario"]) == ({"minor": PRICE_MINOR, "currency": "CNY"}, "traffic_planning")
    assert payload["verdict"]["decision"] == "accepted"
    assert len(payload["product"]["dataset_sha256"]) == 64
    assert [d["content_sha256"] for d in payload["deliveries"]] == [payload["product"]["dataset_sha256"]]
    assert payload["log"]["entry"]["action"] == "order.completed"
    # organisation facts only: no person's name or email
    text = json.dumps(payload)
    assert market.buyer.email not in text, text
    checked = verify(answer["certificate"], await jwks(market))
    assert checked.ok, checked.line()
    assert checked.line().endswith(f"order {order_id} completed")
    # the provider and administrators get the same document, kept from the first request
    for who in (market.provider, market.admin, market.buyer):
        again = await certificate_of(market, order_id, who)
        assert again.json()["certificate"] == answer["certificate"]


def test_the_check_loads_no_database_and_knows_the_tree_heads_type() -> None:
    command = [
        sys.executable,
        "-c",
        "import sys, marketplace.certificates.inputs; print(any(m.startswith('sqlalchemy') for m in sys.modules))",
    ]
    assert subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.strip() == "False"
    assert TREE_HEAD_TYPE == transparency.TREE_HEAD_TYPE


def flipped(token: str, position: int) -> str:
    """The token with the character at `position` changed in its lowest bit, the least a change can be (a dot
    becomes a letter)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    current = token[position]
    other = "A" if current == "." else alphabet[alphabet.index(current) ^ 1]
    return token[:position] + other + token[position + 1 :]


async def test_any_changed_byte_of_the_certificate_fails(market: Market, certified: tuple[str, dict[str, Any]]) -> None:
    _, answer = certified
    token, keys = answer["certificate"], await jwks(market)
    # positions across the whole compact JWS (header, payload, signature), both dots, and the last character of
    # each part, whose lowest bits a lax base64 decoder would ignore (PyJWT checks each character: a check costs ms)
    dots = [index for index, character in enumerate(token) if character == "."]
    ends = [dots[0] - 1, dots[1] - 1, len(token) - 1]
    for position in sorted({*range(0, len(token), len(token) // 150 or 1), *dots, *ends}):
        changed = flipped(token, position)
        assert changed != token
        assert not verify(changed, keys).ok, position


async def test_another_tree_head_or_a_tampered_entry_fails(
    market: Market, certified: tuple[str, dict[str, Any]]
) -> None:
    _, answer = certified
    keys = await jwks(market)
    # more entries join the log: the newer head is genuine, but the certificate's proof is against the older one
    await completed_order(market)
    await sequence_audit(market.api.runtime())
    head = (await market.api.client.get("/api/v1/transparency/tree-head")).json()["signed"]
    newer = verify(answer["certificate"], keys, head)
    assert not newer.ok
    assert "inclusion" in str(newer.failure)
    assert newer.line().startswith("signature ok")
    # the head it carries, presented again, holds
    assert verify(answer["certificate"], keys, answer["payload"]["log"]["tree_head"]).ok
    # a certificate re-signed by the notary over a tampered entry fails its inclusion
    notary = market.api.runtime().notary
    tampered = json.loads(json.dumps(answer["payload"]))
    tampered["log"]["entry"]["payload"]["reason"] = "edited"
    resigned = verify(notary.sign(tampered, CERTIFICATE_TYPE), keys)
    assert not resigned.ok
    assert "inclusion" in str(resigned.failure)
    # a head passed off as a certificate, or a certificate as a head, fails on its type
    assert "not of type" in str(verify(head, keys).failure)
    assert not verify(answer["certificate"], keys, answer["certificate"]).ok


async def test_a_certificate_signed_by_another_key_of_the_set_fails(
    market: Market, certified: tuple[str, dict[str, Any]]
) -> None:
    _, answer = certified
    keys = await jwks(market)
    keyring = market.api.runtime().token_keyring
    forged = jws.sign(answer["payload"], keyring.signing_key, keyring.signing_kid, CERTIFICATE_TYPE)
    assert keyring.signing_kid in {key["kid"] for key in keys["keys"]}
    refused = verify(forged, keys)
    assert not refused.ok
    assert f"signed by key {keyring.signing_kid}, which is not a notary key" in str(refused.failure)
    # nor when that key signs the tree head too
    head = jws.verify(answer["payload"]["log"]["tree_head"], keys, TREE_HEAD_TYPE)
    both = json.loads(json.dumps(answer["payload"]))
    both["log"]["tree_head"] = jws.sign(head, keyring.signing_key, keyring.signing_kid, TREE_HEAD_TYPE)
    forged = jws.sign(both, keyring.signing_key, keyring.signing_kid, CERTIFICATE_TYPE)
    assert "which is not a notary key" in str(verify(forged, keys).failure)
    # a key set that marks no key as the notary's checks nothing
    unmarked = {"keys": [{k: v for k, v in key.items() if k != "purpose"} for key in keys["keys"]]}
    assert verify(answer["certificate"], unmarked).failure == "the JWKS holds no notary key"
    # and a key outside the set
    stranger = Notary(Ed25519PrivateKey.generate())
    assert "does not hold" in str(verify(stranger.sign(answer["payload"], CERTIFICATE_TYPE), keys).failure)


async def test_the_command_verifies_a_certificate_from_files_offline(
    market: Market, certified: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    order_id, answer = certified
    (tmp_path / "certificate.json").write_text(json.dumps(answer))
    (tmp_path / "certificate.jws").write_text(answer["certificate"])
    (tmp_path / "jwks.json").write_text(json.dumps(await jwks(market)))
    header, payload, signature = answer["certificate"].split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    document["amount"]["minor"] += 1
    edited = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    (tmp_path / "edited.jws").write_text(f"{header}.{edited}.{signature}")

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "marketplace.cli", "verify-certificate", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)

    for name in ("certificate.json", "certificate.jws"):
        held = check(name, "--jwks", "jwks.json")
        assert held.returncode == 0, held.stdout + held.stderr
        assert held.stdout.startswith("signature ok")
        assert held.stdout.strip().endswith(f"order {order_id} completed")
        assert len(held.stdout.strip().splitlines()) == 1
    refused = check("edited.jws", "--jwks", "jwks.json")
    assert (refused.returncode, refused.stdout.strip()) == (1, "FAILED: signature: signature or payload invalid")
    scheme = check("certificate.jws", "--jwks", "file:///etc/passwd")
    assert scheme.returncode == 1
    assert "only http and https" in scheme.stdout


async def test_only_the_parties_and_administrators_get_it_and_only_once_completed(market: Market) -> None:
    order = await market.accepted_order()
    stranger = await market.api.person("Stranger")
    await market.api.admitted_organization(stranger, market.admin, kind="buyer", dsmm_level=3)
    assert (await certificate_of(market, order["id"], stranger)).status_code == 404
    early = await certificate_of(market, order["id"], market.buyer)
    assert (early.status_code, early.json()["type"]) == (409, "urn:marketplace:problem:certificate-unavailable")
    assert early.json()["current_status"] == "accepted"
    await market.act(order["id"], "pay", market.buyer)
    await market.take_delivery(order["id"])
    await market.act(order["id"], "confirm", market.buyer)
    # completed, but not yet a leaf of the log
    pending = await certificate_of(market, order["id"], market.provider)
    assert pending.status_code == 409
    assert int(pending.headers["Retry-After"]) > 0
    await sequence_audit(market.api.runtime())
    assert (await certificate_of(market, order["id"], stranger)).status_code == 404
    assert (await certificate_of(market, order["id"], market.provider)).status_code == 200
    # a refunded trade has none, even though one was issued before the refund
    assert (await refund(market, order["id"])).status_code == 200
    refunded = await certificate_of(market, order["id"], market.buyer)
    assert (refunded.status_code, refunded.json()["current_status"]) == (409, "refunded")


async def test_the_printable_page_is_bilingual_and_loads_nothing(
    market: Market, certified: tuple[str, dict[str, Any]]
) -> None:
    order_id, answer = certified
    for params, accept in (({"format": "html"}, "application/json"), ({}, "text/html,*/*;q=0.8")):
        page = await market.api.client.get(
            f"/api/v1/orders/{order_id}/certificate", params=params, headers={**market.buyer.headers, "Accept": accept}
        )
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        for chinese, english in (("交易凭证", "Trade certificate"), ("买方", "Buyer"), ("合规裁决", "Trade verdict")):
            assert chinese in html
            assert english in html
        assert market.buyer_org["uscc"] in html
        assert answer["certificate"] in html
        assert "<script" not in html
        assert "http" not in html.split("<body>", 1)[1].replace("/.well-known", "")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "style-src 'sha256-" in policy

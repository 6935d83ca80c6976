"""Access tokens: every forgery and misuse answers 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from marketplace.accounts.tokens import TokenKeyring
from marketplace.kit import clock
from tests.fixtures.api import Api, Person


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims_for(keyring: TokenKeyring, subject: str, **overrides: Any) -> dict[str, Any]:
    now = clock.now()
    claims: dict[str, Any] = {
        "iss": keyring.issuer,
        "aud": keyring.audience,
        "sub": subject,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    for key, value in overrides.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def signed(keyring: TokenKeyring, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(claims, keyring.signing_key, algorithm="EdDSA", headers={"kid": keyring.signing_kid, **headers})


async def me_status(api: Api, token: str) -> int:
    response = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 401:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith("Bearer")
    return response.status_code


@pytest.fixture
async def person(api: Api) -> Person:
    return await api.person("Alice")


@pytest.fixture
def keyring(api: Api) -> TokenKeyring:
    return api.app.state.runtime.token_keyring  # type: ignore[no-any-return]


async def test_valid_token_is_accepted(api: Api, person: Person, keyring: TokenKeyring) -> None:
    assert await me_status(api, person.token) == 200
    assert await me_status(api, signed(keyring, claims_for(keyring, person.id))) == 200


async def test_alg_none_is_rejected(api: Api, person: Person, keyring: TokenKeyring) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": keyring.signing_kid}).encode())
    payload = b64(json.dumps(claims_for(keyring, person.id)).encode())
    assert await me_status(api, f"{header}.{payload}.") == 401


async def test_hmac_token_forged_with_the_public_key_is_rejected(
    api: Api, person: Person, keyring: TokenKeyring
) -> None:
    public_pem = keyring.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, public_pem.strip()):
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keyring.signing_kid}).encode())
        payload = b64(json.dumps(claims_for(keyring, person.id)).encode())
        signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        assert await me_status(api, f"{header}.{payload}.{signature}") == 401


async def test_expired_token_is_rejected(api: Api, person: Person, keyring: TokenKeyring) -> None:
    past = int((clock.now() - timedelta(minutes=10)).timestamp())
    token = signed(keyring, claims_for(keyring, person.id, exp=past, iat=past - 60, nbf=past - 60))
    assert await me_status(api, token) == 401


async def test_token_not_yet_valid_is_rejected(api: Api, person: Person, keyring: TokenKeyring) -> None:
    future = int((clock.now() + timedelta(minutes=10)).timestamp())
    token = signed(keyring, claims_for(keyring, person.id, nbf=future, exp=future + 600))
    assert await me_status(api, token) == 401


async def test_wrong_audience_is_rejected(api: Api, person: Person, keyring: TokenKeyring) -> None:
    assert await me_status(api, signed(keyring, claims_for(keyring, person.id, aud="another-api"))) == 401


async def test_wrong_issuer_is_rejected(api: Api, person: Person, keyring: TokenKeyring) -> None:
    assert await me_status(api, signed(keyring, claims_for(keyring, person.id, iss="someone-else"))) == 401


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"])
async def test_missing_required_claim_is_rejected(api: Api, person: Person, keyring: TokenKeyring, claim: str) -> None:
    assert await me_status(api, signed(keyring, claims_for(keyring, person.id, **{claim: None}))) == 401


async def test_unknown_key_id_is_rejected(api: Api, person: Person, keyring: TokenKeyring) -> None:
    stranger = Ed25519PrivateKey.generate()
    claims = claims_for(keyring, person.id)
    token = jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": "not-a-key-we-know"})
    assert await me_status(api, token) == 401
    # a foreign key presenting our key id fails the signature check
    token = jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": keyring.signing_kid})
    assert await me_status(api, token) == 401


async def test_tampered_payload_is_rejected(api: Api, person: Person, keyring: TokenKeyring) -> None:
    other = await api.person("Mallory")
    header, _, signature = person.token.split(".")
    payload = b64(json.dumps(claims_for(keyring, other.id)).encode())
    assert await me_status(api, f"{header}.{payload}.{signature}") == 401
    assert await me_status(api, person.token[:-4] + ("AAAA" if person.token[-4:] != "AAAA" else "BBBB")) == 401


async def test_garbage_and_missing_credentials_are_rejected(api: Api) -> None:
    for header in ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.token", "Bearer mkt_short"]:
        response = await api.client.get("/api/v1/me", headers={"Authorization": header} if header else {})
        assert response.status_code == 401, header


async def test_disabled_users_valid_token_stops_working_at_once(api: Api, person: Person) -> None:
    admin = await api.admin()
    assert await me_status(api, person.token) == 200
    response = await api.client.post(
        f"/api/v1/admin/users/{person.id}/status",
        json={"status": "disabled", "reason": "suspicious activity"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert await me_status(api, person.token) == 401
    login = await api.client.post("/api/v1/auth/token", json={"email": person.email, "password": "x" * 12})
    assert login.status_code == 401


async def test_deleted_users_token_stops_working_at_once(api: Api, person: Person) -> None:
    response = await api.client.delete("/api/v1/me", headers=person.headers)
    assert response.status_code == 204
    assert await me_status(api, person.token) == 401


async def test_jwks_publishes_the_verification_key(api: Api, keyring: TokenKeyring) -> None:
    response = await api.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    # the access tokens' key, then the notary's (tests/audit/test_transparency.py)
    assert [k["kid"] for k in keys] == [keyring.signing_kid, api.runtime().notary.kid]
    assert (keys[0]["kty"], keys[0]["crv"]) == ("OKP", "Ed25519")
    assert "d" not in keys[0]  # never the private part

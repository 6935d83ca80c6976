"""Compact JWS signed with Ed25519 (EdDSA) through PyJWT: the exchange's notary signs with it (tree heads, trade
certificates), and anyone verifies with the keys of the published JWKS. Ed25519 keys: their ids, their public
JWKs, their PEM files."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from marketplace.kit.canonical import canonical_json
from marketplace.kit.secrets import load_or_create

ALGORITHM = "EdDSA"
_JWS = jwt.PyJWS()


class JWSInvalid(ValueError):
    """A token that is not a compact JWS this service signed for the purpose asked: why is in the text."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """RFC 7638-style thumbprint, shortened: stable for a key, different across keys."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")[:22]


def public_jwk(public_key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    """The key as a JWKS member (RFC 8037), for signatures."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {"kty": "OKP", "crv": "Ed25519", "alg": ALGORITHM, "use": "sig", "kid": kid, "x": x}


def new_private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key of a PEM file, which is created (by one process of several) if there is none."""
    private = serialization.load_pem_private_key(load_or_create(path, new_private_pem), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return private


def sign(payload: dict[str, Any], key: Ed25519PrivateKey, kid: str, typ: str) -> str:
    """A compact JWS of the payload's canonical JSON, its header naming the key and the token's type."""
    headers = {"kid": kid, "typ": typ}
    return _JWS.encode(canonical_json(payload).encode(), key, algorithm=ALGORITHM, headers=headers)


def verify(token: str, jwks: dict[str, Any], typ: str) -> dict[str, Any]:
    """The payload of a compact JWS signed with EdDSA by a key of `jwks` (picked by kid) and of type `typ`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise JWSInvalid("not a compact JWS") from error
    if header.get("alg") != ALGORITHM:
        raise JWSInvalid("not signed with EdDSA")
    if header.get("typ") != typ:
        raise JWSInvalid(f"not of type {typ}")
    jwk = next((key for key in jwks.get("keys", []) if key.get("kid") == header.get("kid")), None)
    if jwk is None:
        raise JWSInvalid("signed by a key the JWKS does not hold")
    try:
        public = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        signed = _JWS.decode_complete(token, public, algorithms=[ALGORITHM])
        payload = json.loads(signed["payload"])
    except (jwt.PyJWTError, ValueError) as error:
        raise JWSInvalid("signature or payload invalid") from error
    if not isinstance(payload, dict):
        raise JWSInvalid("the payload is not a JSON object")
    return payload


class Notary:
    """The exchange's notary key: it signs what the exchange attests (tree heads of the transparency log, trade
    certificates). Its public key is in the JWKS beside the access tokens' keys, under its own kid, and is never
    accepted as an access-token key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.kid = key_id(key.public_key())

    @classmethod
    def load(cls, path: Path) -> Notary:
        return cls(load_private_key(path))

    def sign(self, payload: dict[str, Any], typ: str) -> str:
        return sign(payload, self._key, self.kid, typ)

    def jwk(self) -> dict[str, str]:
        return public_jwk(self._key.public_key(), self.kid)

    def jwks(self) -> dict[str, Any]:
        """A JWKS of the notary's key alone: what `verify` needs to check the notary's own signatures."""
        return {"keys": [self.jwk()]}

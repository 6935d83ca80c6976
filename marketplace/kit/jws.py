"""Compact JWS signed with Ed25519 (EdDSA) through PyJWT: the exchange's notary signs with it (tree heads, trade
certificates), and anyone verifies with the keys of the published JWKS. Ed25519 keys: their ids, their public
JWKs, their PEM files; the notary's keys and their rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from marketplace.kit.canonical import canonical_json
from marketplace.kit.secrets import load_or_create

ALGORITHM = "EdDSA"
# The JWK member that marks the notary's keys in the published JWKS (RFC 7517 lets a JWK carry members of its own):
# a tree head or a certificate is the exchange's word only when a key so marked signed it.
PURPOSE = "purpose"
NOTARY = "notary"
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


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


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
        raise JWSInvalid(f"signed by key {header.get('kid')}, which the JWKS does not hold")
    try:
        public = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        signed = _JWS.decode_complete(token, public, algorithms=[ALGORITHM])
        payload = json.loads(signed["payload"])
    except (jwt.PyJWTError, ValueError) as error:
        raise JWSInvalid("signature or payload invalid") from error
    if not isinstance(payload, dict):
        raise JWSInvalid("the payload is not a JSON object")
    return payload


def notary_keys(jwks: dict[str, Any]) -> dict[str, Any]:
    """The keys of a JWKS that are the notary's (marked so), as a JWKS."""
    keys = jwks.get("keys", [])
    return {"keys": [key for key in keys if isinstance(key, dict) and key.get(PURPOSE) == NOTARY]}


class Notary:
    """The exchange's notary: its current key signs what the exchange attests (tree heads of the transparency log,
    trade certificates); its retired keys, public keys only, never sign again but stay published and accepted for
    ever, because every head and certificate they signed must stay verifiable. All are in the JWKS beside the
    access tokens' keys, each under its own kid and marked as the notary's, and none is an access-token key."""

    def __init__(self, key: Ed25519PrivateKey, retired: Iterable[Ed25519PublicKey] = ()) -> None:
        self._key = key
        self.kid = key_id(key.public_key())
        # the current key's own public key is left out: a rotation cut short leaves it retired and current at once
        self.retired = {kid: public for public in retired if (kid := key_id(public)) != self.kid}

    @classmethod
    def load(cls, path: Path, retired_dir: Path) -> Notary:
        """The current key of a PEM file (created if there is none) and the retired keys, every *.pem public key
        file of `retired_dir`."""
        retired = [load_public_key(file) for file in sorted(retired_dir.glob("*.pem"))] if retired_dir.is_dir() else []
        return cls(load_private_key(path), retired)

    @property
    def kids(self) -> list[str]:
        """Every notary key's id, the current one first."""
        return [self.kid, *self.retired]

    def sign(self, payload: dict[str, Any], typ: str) -> str:
        return sign(payload, self._key, self.kid, typ)

    def jwks(self) -> dict[str, Any]:
        """Every notary key, the current one first, marked as the notary's: what `verify` needs to check any
        signature the notary ever made."""
        keys = {self.kid: self._key.public_key(), **self.retired}
        return {"keys": [{**public_jwk(public, kid), PURPOSE: NOTARY} for kid, public in keys.items()]}


def rotate_notary(path: Path, retired_dir: Path) -> tuple[str, str]:
    """Retire the notary key of `path` and make a new one current; returns (retired kid, new kid). The retired
    key's public key is written to `retired_dir` first, so that a rotation cut short leaves the old key current
    and retired at once (harmless), never a signed head whose key is lost. Processes load their keys when they
    start: each one signs with the new key, and knows it, once restarted."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: there is no notary key to rotate")
    old = load_private_key(path).public_key()
    old_kid = key_id(old)
    load_or_create(retired_dir / f"{old_kid}.pem", lambda: public_pem(old))
    fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(new_private_pem())
    os.replace(fresh, path)  # atomic: a process starting meanwhile reads the old key or the new one, whole
    return old_kid, key_id(load_private_key(path).public_key())

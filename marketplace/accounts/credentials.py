"""Passwords (argon2id) and API key secrets (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_MARKER = "mkt_"
API_KEY_PREFIX_CHARS = 8

_hasher = PasswordHasher()
# Verified against when the account does not exist, so both answers take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    """argon2id, in a worker thread: a hash costs tens of milliseconds the event loop must not wait for."""
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; in a worker thread, like hashing."""
    return await anyio.to_thread.run_sync(_verify, password_hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_api_key(marker: str = API_KEY_MARKER) -> tuple[str, str]:
    """Return (key, prefix): the key as shown once to its owner, the prefix as stored in clear. The
    marker tells kinds of keys apart (organisations' API keys; licences' access keys)."""
    prefix = marker + secrets.token_hex(API_KEY_PREFIX_CHARS // 2)
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_MARKER)


def api_key_prefix(key: str, marker: str = API_KEY_MARKER) -> str | None:
    """The stored prefix of a key of the form <marker><8 hex>_<secret>, or None if malformed."""
    end = len(marker) + API_KEY_PREFIX_CHARS
    if len(key) <= end + 1 or key[end] != "_" or not key.startswith(marker):
        return None
    return key[:end]


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())

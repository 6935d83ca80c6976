"""Signed download links: HMAC-SHA256 over the licence, the person, the dataset's digest and the expiry,
under a key id so that keys can be rotated.

A link is a capability that works without a bearer token (a browser or `curl` can follow it), so what
it grants is fixed by its signature and re-checked against the database at every download: it names
one licence, one person and one file, and lives at most 15 minutes."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from marketplace.kit.secrets import load_or_create

MAX_TTL_SECONDS = 900
# A link claiming to live longer than we ever sign for (plus this much clock skew between workers) was
# not made by us: only a leaked key could make it.
CLOCK_SKEW_SECONDS = 5
LINK_PARAMETERS = frozenset({"user", "sha256", "expires", "kid", "sig"})
_VERSION = b"dl1"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXPIRES = re.compile(r"[1-9][0-9]{0,11}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")
_KEY_FILE = re.compile(r"download-([A-Za-z0-9_-]{1,32})\.key")


class InvalidLink(ValueError):
    """Every refusal has the same message, so a caller learns nothing about which part was wrong;
    `reason` names it for logs and tests."""

    def __init__(self, reason: str) -> None:
        super().__init__("the download link is invalid or has expired")
        self.reason = reason


@dataclass(frozen=True)
class SignedLink:
    params: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class LinkClaims:
    licence_id: uuid.UUID
    user_id: uuid.UUID
    sha256: str
    expires_at: datetime
    key_id: str


def _message(key_id: str, licence_id: uuid.UUID, user_id: uuid.UUID, sha256: str, expires: int) -> bytes:
    """Fixed-width fields joined by a separator none of them can contain: one byte string per link."""
    fields = (key_id, str(licence_id), str(user_id), sha256, str(expires))
    return b"\n".join([_VERSION, *(field.encode("ascii") for field in fields)])


def _encode(signature: bytes) -> str:
    return base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")


def _canonical_uuid(text: str, reason: str) -> uuid.UUID:
    """Only the lower-case hyphenated form: two spellings of one id would be two links with one meaning."""
    try:
        value = uuid.UUID(text)
    except ValueError:
        raise InvalidLink(reason) from None
    if str(value) != text:
        raise InvalidLink(reason)
    return value


class DownloadKeyring:
    """The secrets that sign links, by key id; new links are signed with the current one."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if not _KEY_ID.fullmatch(current_key_id):
            raise ValueError(f"a download key id is 1-32 characters of A-Z, a-z, 0-9, _ and -: {current_key_id!r}")
        if current_key_id not in keys:
            raise ValueError(f"no download key {current_key_id!r}")
        for key_id, secret in keys.items():
            if not _KEY_ID.fullmatch(key_id) or len(secret) < 32:
                raise ValueError(f"download key {key_id!r} is malformed")
        self._keys = dict(keys)
        self.current_key_id = current_key_id

    @classmethod
    def load(cls, directory: Path, current_key_id: str) -> DownloadKeyring:
        """Keys are files `download-<kid>.key` of 32 random bytes. The current one is created when missing;
        the others are kept for verifying links signed before a rotation, until their file is removed."""
        if not _KEY_ID.fullmatch(current_key_id):
            raise ValueError(f"a download key id is 1-32 characters of A-Z, a-z, 0-9, _ and -: {current_key_id!r}")
        keys = {
            current_key_id: load_or_create(
                directory / f"download-{current_key_id}.key", lambda: secrets.token_bytes(32)
            )
        }
        for path in sorted(directory.glob("download-*.key")):
            match = _KEY_FILE.fullmatch(path.name)
            if match and match.group(1) not in keys:
                keys[match.group(1)] = path.read_bytes()
        return cls(keys, current_key_id)

    def sign(
        self, licence_id: uuid.UUID, user_id: uuid.UUID, sha256: str, now: datetime, ttl_seconds: int
    ) -> SignedLink:
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"a download link lives 1 to {MAX_TTL_SECONDS} seconds, not {ttl_seconds}")
        if not _SHA256.fullmatch(sha256):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        expires = int(now.timestamp()) + ttl_seconds
        key_id = self.current_key_id
        signature = hmac.digest(self._keys[key_id], _message(key_id, licence_id, user_id, sha256, expires), "sha256")
        params = {
            "user": str(user_id),
            "sha256": sha256,
            "expires": str(expires),
            "kid": key_id,
            "sig": _encode(signature),
        }
        return SignedLink(params=params, expires_at=datetime.fromtimestamp(expires, UTC))

    def verify(self, licence_id: uuid.UUID, params: Mapping[str, str], now: datetime) -> LinkClaims:
        """The link's claims, if we signed exactly these parameters with a key we still hold and the link
        has not expired (valid while now < expires); otherwise InvalidLink."""
        if set(params) != LINK_PARAMETERS:
            raise InvalidLink("missing or extra parameters")
        key_id, sha256, expires_text, signature = params["kid"], params["sha256"], params["expires"], params["sig"]
        user_id = _canonical_uuid(params["user"], "malformed user")
        if not _SHA256.fullmatch(sha256):
            raise InvalidLink("malformed sha256")
        if not _EXPIRES.fullmatch(expires_text):
            raise InvalidLink("malformed expiry")
        if not _SIGNATURE.fullmatch(signature):
            raise InvalidLink("malformed signature")
        secret = self._keys.get(key_id) if _KEY_ID.fullmatch(key_id) else None
        if secret is None:
            raise InvalidLink("unknown key id")
        expires = int(expires_text)
        expected = hmac.digest(secret, _message(key_id, licence_id, user_id, sha256, expires), "sha256")
        if not hmac.compare_digest(_encode(expected), signature):
            raise InvalidLink("bad signature")
        moment = now.timestamp()
        if moment >= expires:
            raise InvalidLink("expired")
        if expires - moment > MAX_TTL_SECONDS + CLOCK_SKEW_SECONDS:
            raise InvalidLink("expiry too far ahead")
        return LinkClaims(
            licence_id=licence_id,
            user_id=user_id,
            sha256=sha256,
            expires_at=datetime.fromtimestamp(expires, UTC),
            key_id=key_id,
        )

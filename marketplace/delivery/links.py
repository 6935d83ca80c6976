"""Signed download links: HMAC-SHA256 over the licence, the person, the dataset's digest and the expiry,
under a key id so that keys can be rotated.

A link is a capability that works without a bearer token (a browser or `curl` can follow it), so what
it grants is fixed by its signature and re-checked against the database at every download: it names
one licence, one person and one file, and lives at most 15 minutes.

The licence id travels in the URL path (`/api/v1/downloads/{licence_id}?user=…&sha256=…&expires=…&kid=…&sig=…`)
and is signed like the query parameters: moving a link to another licence breaks its signature."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from marketplace.config import MAX_DOWNLOAD_LINK_TTL_SECONDS
from marketplace.kit.secrets import load_or_create

MAX_TTL_SECONDS = MAX_DOWNLOAD_LINK_TTL_SECONDS
# A link claiming to live longer than we ever sign for (plus this much clock skew between workers) was
# not made by us: only a leaked key could make it. 5 s covers workers whose clocks disagree a little.
CLOCK_SKEW_SECONDS = 5
KEY_BYTES = 32
LINK_PARAMETERS = frozenset({"user", "sha256", "expires", "kid", "sig"})
# Domain separation: the first line of every signed message, changed if the message's layout ever is,
# so that a signature made for one layout (or for anything else keyed with these secrets) never fits another.
_VERSION = b"dl1"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Decimal without sign or leading zero, at most 12 digits: one spelling per instant, and small enough
# that turning it into a datetime cannot overflow. ([0-9], not \d, which also matches non-ASCII digits.)
_EXPIRES = re.compile(r"[1-9][0-9]{0,11}")
# 32 bytes in unpadded base64url are 43 characters.
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")
_KEY_FILE = re.compile(r"download-([A-Za-z0-9_-]{1,32})\.key")
_MESSAGE = "the download link is invalid or has expired"


class InvalidLink(ValueError):
    """Every refusal has the same message, so a caller learns nothing about which part was wrong;
    `reason` names it for logs and tests."""

    def __init__(self, reason: str) -> None:
        super().__init__(_MESSAGE)
        self.reason = reason


@dataclass(frozen=True)
class SignedLink:
    """The query parameters of a link (the licence id goes in its path) and when it stops working."""

    params: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class LinkClaims:
    """What a verified link grants; the caller still checks it against the database."""

    licence_id: uuid.UUID
    user_id: uuid.UUID
    sha256: str
    expires_at: datetime
    key_id: str


def _check_key_id(key_id: str) -> None:
    """Key ids become file names and lines of the signed message: no path separators, no newlines."""
    if not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"a download key id is 1-32 characters of A-Z, a-z, 0-9, _ and -: {key_id!r}")


def _unix_seconds(now: datetime) -> float:
    """A naive datetime's timestamp is taken in the machine's local zone: refused rather than guessed."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be a timezone-aware datetime")
    return now.timestamp()


def _message(key_id: str, licence_id: uuid.UUID, user_id: uuid.UUID, sha256: str, expires: int) -> bytes:
    """The bytes that are signed, one string per link: the version tag and the five fields, one a line.
    None of the fields can contain a newline (each is checked against its pattern first), so no two
    different links share a message."""
    fields = (key_id, str(licence_id), str(user_id), sha256, str(expires))
    return b"\n".join([_VERSION, *(field.encode("ascii") for field in fields)])


def _encode(signature: bytes) -> str:
    return base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")


def _decode_signature(text: str) -> bytes:
    """43 base64url characters whose unused low bits are zero: any other spelling of the same 32 bytes
    would be a second valid link for one signature."""
    if not _SIGNATURE.fullmatch(text):
        raise InvalidLink("malformed signature")
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        raise InvalidLink("malformed signature") from None
    if len(raw) != KEY_BYTES or _encode(raw) != text:
        raise InvalidLink("malformed signature")
    return raw


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
    """The secrets that sign links, by key id; new links are signed with the current one, and a link is
    verified with the key its `kid` names, as long as that key is still held."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        _check_key_id(current_key_id)
        if current_key_id not in keys:
            raise ValueError(f"no download key {current_key_id!r}")
        for key_id, secret in keys.items():
            _check_key_id(key_id)
            if len(secret) < KEY_BYTES:  # a truncated or empty key file: fail at start-up, not per link
                raise ValueError(f"download key {key_id!r} is shorter than {KEY_BYTES} bytes")
        self._keys = dict(keys)
        self.current_key_id = current_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @classmethod
    def load(cls, directory: Path, current_key_id: str) -> DownloadKeyring:
        """Keys are files `download-<kid>.key` of 32 random bytes. The current one is created when missing
        (by one worker only, see `load_or_create`); every other one is kept for verifying links signed
        before a rotation, until its file is removed, which invalidates them at the next start."""
        _check_key_id(current_key_id)
        keys = {
            current_key_id: load_or_create(
                directory / f"download-{current_key_id}.key", lambda: secrets.token_bytes(KEY_BYTES)
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
        """A link for `user_id` to download the file with digest `sha256` under `licence_id`, valid from
        `now` for `ttl_seconds` (1 to MAX_TTL_SECONDS; the expiry is whole seconds, rounded down)."""
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"a download link lives 1 to {MAX_TTL_SECONDS} seconds, not {ttl_seconds}")
        if not _SHA256.fullmatch(sha256):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        expires = int(_unix_seconds(now)) + ttl_seconds
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
        """The link's claims, if we signed exactly these parameters with a key we still hold, it has not
        expired (valid while now < expires) and its expiry is no further ahead than we ever sign for;
        otherwise InvalidLink, whose `reason` says which check failed.

        The shape of every value is checked before the signature, so that only one spelling of each
        field is accepted (no second link for one signature) and the message stays unambiguous."""
        moment = _unix_seconds(now)
        if set(params) != LINK_PARAMETERS:
            raise InvalidLink("missing or extra parameters")
        if not all(isinstance(value, str) for value in params.values()):
            raise InvalidLink("a parameter is not a single text value")
        key_id, sha256, expires_text = params["kid"], params["sha256"], params["expires"]
        user_id = _canonical_uuid(params["user"], "malformed user")
        if not _SHA256.fullmatch(sha256):
            raise InvalidLink("malformed sha256")
        if not _EXPIRES.fullmatch(expires_text):
            raise InvalidLink("malformed expiry")
        signature = _decode_signature(params["sig"])
        secret = self._keys.get(key_id) if _KEY_ID.fullmatch(key_id) else None
        if secret is None:  # never signed by us, or signed with a key since retired
            raise InvalidLink("unknown key id")
        expires = int(expires_text)
        expected = hmac.digest(secret, _message(key_id, licence_id, user_id, sha256, expires), "sha256")
        if not hmac.compare_digest(expected, signature):  # constant time: no byte-by-byte oracle
            raise InvalidLink("bad signature")
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

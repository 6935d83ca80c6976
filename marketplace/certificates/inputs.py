"""What `marketplace verify-certificate` reads: a certificate (the compact JWS, or the JSON the API answers), a
tree head (the compact JWS, or the JSON of /api/v1/transparency/tree-head) and a JWKS, from a file or from an
http(s) URL the checker names (a plain fetch with a time limit and a size cap)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from marketplace.certificates.verification import Checked, verify

FETCH_SECONDS = 10
MAX_BYTES = 1 << 20  # a JWKS or a certificate is a few kilobytes


class Unreadable(ValueError):
    """An input that cannot be read as what it should be: why, in the text."""


def check_files(certificate: Path, jwks: str, tree_head: Path | None = None) -> Checked:
    """What `marketplace verify-certificate` checks: the certificate of a file against the JWKS of a file or URL,
    and the tree head of a file when one is given. Raises Unreadable for an input it cannot read."""
    token = compact_jws(read_text(certificate), "certificate", str(certificate))
    head = compact_jws(read_text(tree_head), "signed", str(tree_head)) if tree_head else None
    return verify(token, load_jwks(jwks), head)


def read_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as error:
        raise Unreadable(f"cannot read {path}: {error.strerror}") from None
    return _decoded(raw, str(path))


def _decoded(raw: bytes, source: str) -> str:
    if len(raw) > MAX_BYTES:
        raise Unreadable(f"{source} is larger than {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{source} is not UTF-8 text") from None


def compact_jws(text: str, member: str, source: str) -> str:
    """The compact JWS of a file: its text, or `member` of the JSON object it holds."""
    text = text.strip()
    if not text.startswith("{"):
        return text
    try:
        value = json.loads(text).get(member)
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str):
        raise Unreadable(f"{source} is JSON without a {member} string")
    return value


def load_jwks(source: str) -> dict[str, Any]:
    """The JWKS of a file, or of an http(s) URL; any other URL scheme is refused."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        text = _fetch(source)
    elif "://" in source:
        raise Unreadable(f"only http and https URLs are fetched, not {scheme}:")
    else:
        text = read_text(Path(source))
    try:
        jwks = json.loads(text)
    except ValueError:
        raise Unreadable(f"{source} is not JSON") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise Unreadable(f"{source} is not a JWKS (an object with a keys list)")
    return jwks


def _fetch(url: str) -> str:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (scheme checked)
    try:
        with urllib.request.urlopen(request, timeout=FETCH_SECONDS) as answer:  # noqa: S310
            return _decoded(answer.read(MAX_BYTES + 1), url)
    except OSError as error:
        raise Unreadable(f"cannot fetch {url}: {error}") from None

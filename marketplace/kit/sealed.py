"""Secrets the service must use again later (webhook signing secrets), stored sealed: AES-256-GCM under a key
derived from the process's secret key, bound to what they belong to, so a database copy alone reveals none."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class Sealer:
    """Seals and opens secrets of one purpose; `context` (the owner's id) must be the same both ways."""

    def __init__(self, secret_key: bytes, purpose: str) -> None:
        # A key of its own per purpose: a sealed value of one purpose never opens as another's.
        self._aead = AESGCM(hmac.new(secret_key, f"sealed:{purpose}".encode(), hashlib.sha256).digest())

    def seal(self, secret: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, secret, context.encode())).decode()

    def open(self, sealed: str, context: str) -> bytes:
        """The secret; ValueError when it was sealed under another key or context, or altered."""
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except InvalidTag as error:
            raise ValueError("the sealed secret does not open with this key") from error

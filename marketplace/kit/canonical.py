"""Canonical JSON: the one byte form hashed for the audit chain and rulebook fingerprints."""

import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

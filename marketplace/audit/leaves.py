"""What a leaf of the transparency log is, pure: the canonical JSON (marketplace/kit/canonical.py) of an entry's
body, its id included:

    {"action": ..., "actor": ..., "at": "2026-01-01T00:00:00.000000+00:00", "id": 17, "object_id": ...,
     "object_type": ..., "payload": {...}}

and the leaf's hash is RFC 9162's: SHA-256(0x00 || that text in UTF-8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marketplace.kit.canonical import canonical_json

# The body's keys sort as: action, actor, at | id | object_id, object_type, payload.
_BEFORE_ID = ("action", "actor", "at")
_AFTER_ID = ("object_id", "object_type", "payload")


def format_time(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def body(
    *, id: int, at: datetime, actor: str, action: str, object_type: str, object_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id,
        "at": format_time(at),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "payload": payload,
    }


def leaf_text(entry_body: dict[str, Any]) -> str:
    return canonical_json(entry_body)


def around_id(entry_body: dict[str, Any]) -> tuple[str, str]:
    """The leaf's text before and after its id's digits, for a database that numbers the entry as it inserts it:
    before + str(id) + after == leaf_text(body with that id)."""
    before = canonical_json({name: entry_body[name] for name in _BEFORE_ID})[:-1] + ',"id":'
    after = "," + canonical_json({name: entry_body[name] for name in _AFTER_ID})[1:]
    return before, after

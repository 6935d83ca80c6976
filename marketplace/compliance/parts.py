"""A snapshot as stored: the facts many verdicts share, once each by content hash, and the verdict's own inline.

An organisation's facts (as applicant, provider, buyer or intermediary), a product version's facts and a plan
are the same on every order for the same buyer and product: each is stored once in `snapshot_part` under the
sha256 of its canonical JSON, and the verdict keeps the digest by role. What is the verdict's own (the trade,
delivery and settlement facts, extensions and absent parts) stays inline. Reassembled, the parts and the
inline facts are the JSON document of the snapshot that was judged."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from marketplace.kit.canonical import canonical_json

# The roles of a snapshot stored as parts, and the kind of each part.
KINDS: dict[str, str] = {
    "organization": "organization",
    "provider": "organization",
    "buyer": "organization",
    "intermediary": "organization",
    "product": "product",
    "plan": "plan",
}


@dataclass(frozen=True)
class Part:
    digest: str
    kind: str
    document: dict[str, Any]

    def row(self) -> dict[str, Any]:
        """The part as a row of `snapshot_part`."""
        return {"digest": self.digest, "kind": self.kind, "document": self.document}


def digest_of(document: dict[str, Any]) -> str:
    """The sha256 of a part's canonical JSON, in hex: its key."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def part_of(role: str, facts: BaseModel) -> Part:
    """The part `facts` make in `role`: the same as `split` makes of them inside a snapshot's document (a kept
    listing digests its provider, version and plans once, not once per order)."""
    document = facts.model_dump(mode="json")
    return Part(digest_of(document), KINDS[role], document)


def split(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Part]]:
    """A snapshot's JSON document as (its inline facts, its parts by role)."""
    inline: dict[str, Any] = {}
    parts: dict[str, Part] = {}
    for role, value in document.items():
        kind = KINDS.get(role)
        if kind is None or value is None:
            inline[role] = value
        else:
            parts[role] = Part(digest_of(value), kind, value)
    return inline, parts


def assemble(inline: dict[str, Any], digests: Mapping[str, str], documents: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's JSON document again: the inline facts and, for each role, the part its digest names."""
    return {**inline, **{role: documents[digest] for role, digest in digests.items()}}

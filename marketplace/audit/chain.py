"""The hash chain, pure: hash = sha256(prev_hash || canonical JSON of the entry)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace.kit.canonical import canonical_json

GENESIS_HASH = "0" * 64


def format_time(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ChainEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": format_time(self.at),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "payload": self.payload,
        }


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode()).hexdigest()


def text_before_seq(body: dict[str, Any]) -> str:
    """The canonical JSON of an entry's body up to its sequence number, which sorts last: the hashed text is
    prev_hash + this + str(seq) + "}", so a database that numbers the entry can hash it (see
    AuditRepository.append)."""
    without_seq = canonical_json({name: value for name, value in body.items() if name != "seq"})
    return without_seq[:-1] + ',"seq":'


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None
    reason: str | None


class ChainVerifier:
    """Feed entries in stored order; the first break is kept, later ones are not needed."""

    def __init__(self) -> None:
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.entries = 0
        self.first_broken_seq: int | None = None
        self.reason: str | None = None

    def _break(self, seq: int, reason: str) -> None:
        if self.first_broken_seq is None or seq < self.first_broken_seq:
            self.first_broken_seq, self.reason = seq, reason

    def feed(self, entry: ChainEntry) -> None:
        self.entries += 1
        if self.first_broken_seq is not None:
            return
        if entry.seq != self.expected_seq:
            # missing, moved or inserted entries: the chain breaks where the expected number is not
            self._break(self.expected_seq, "sequence gap or reorder")
        elif entry.prev_hash != self.prev_hash:
            self._break(entry.seq, "prev_hash does not match the previous entry")
        elif entry_hash(entry.prev_hash, entry.body()) != entry.hash:
            self._break(entry.seq, "hash does not match the entry's content")
        self.expected_seq = entry.seq + 1
        self.prev_hash = entry.hash

    def entries_beyond_head(self, first_seq: int) -> None:
        self._break(first_seq, "entry stored past the recorded head")

    def finish(self, head_seq: int, head_hash: str) -> ChainReport:
        last_seq = self.expected_seq - 1
        if self.first_broken_seq is None:
            if last_seq < head_seq:
                self._break(last_seq + 1, "entries missing at the end of the chain")
            elif last_seq > head_seq or self.prev_hash != head_hash:
                self._break(min(last_seq, head_seq + 1), "chain does not end at the recorded head")
        return ChainReport(
            ok=self.first_broken_seq is None,
            entries=self.entries,
            head_hash=head_hash,
            first_broken_seq=self.first_broken_seq,
            reason=self.reason,
        )


def verify_chain(entries: Iterable[ChainEntry], head_seq: int, head_hash: str) -> ChainReport:
    verifier = ChainVerifier()
    for entry in entries:
        verifier.feed(entry)
    return verifier.finish(head_seq, head_hash)

"""The transparency log over the audit entries (RFC 9162's structure): the sequencer that makes pending entries
leaves of the Merkle tree and publishes a signed tree head, and the proofs anyone can check against a head:
an entry's inclusion, and the consistency of two heads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.audit.models import AuditTreeHead
from marketplace.audit.repository import AuditRepository
from marketplace.audit.verification import Broken, LogReport, LogVerifier, first
from marketplace.errors import NotFound, Unprocessable
from marketplace.kit import clock, jws, merkle
from marketplace.kit.i18n import Message
from marketplace.kit.jws import Notary

TREE_HEAD_TYPE = "tree-head+jws"
# Leaves read and checked at a time by `verify`: a power of two, so that each batch is a perfect subtree.
VERIFY_BATCH = 1 << 14


def rfc3339(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class EntryProof:
    """What proves an entry is in the log: its body as hashed, its leaf, the inclusion proof (hex, nearest the
    leaf first) and the signed tree head it proves against."""

    body: dict[str, Any]
    leaf_index: int
    tree_size: int
    inclusion: list[str]
    tree_head: str


class TransparencyLog:
    def __init__(self, session: AsyncSession, notary: Notary) -> None:
        self.repository = AuditRepository(session)
        self.notary = notary

    async def sequence(self, batch: int) -> int:
        """Make up to `batch` pending entries, in id order, the next leaves, and publish the signed head of the
        grown tree, all in the caller's transaction; returns how many joined. One sequencer at a time: a
        second waits for the first's transaction to end."""
        await self.repository.lock_sequencer()
        pending = await self.repository.pending(batch)
        if not pending:
            return 0
        size = await self.repository.tree_size()
        frontier = await self._frontier(size)
        for _, leaf in pending:
            frontier.append(merkle.leaf_hash(leaf.encode()))
        await self.repository.assign_leaves([entry_id for entry_id, _ in pending], size)
        await self.repository.add_nodes(frontier.completed)
        await self.repository.add_head(self._signed_head(frontier.size, frontier.root()))
        return len(pending)

    async def _frontier(self, size: int) -> merkle.Frontier:
        wanted = merkle.pieces(0, size)
        stored = await self.repository.subtrees(wanted)
        return merkle.Frontier(size, (stored[key] for key in wanted), keep=True)

    def _signed_head(self, size: int, root: bytes) -> AuditTreeHead:
        now = clock.now()
        at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as precise as the signed timestamp
        payload = {"tree_size": size, "root_hash": root.hex(), "timestamp": rfc3339(at)}
        signed = self.notary.sign(payload, TREE_HEAD_TYPE)
        return AuditTreeHead(tree_size=size, root_hash=root.hex(), published_at=at, signed=signed)

    # Proofs

    async def latest_head(self) -> AuditTreeHead | None:
        return await self.repository.latest_head()

    async def heads(self, *, limit: int, offset: int) -> tuple[Sequence[AuditTreeHead], int]:
        return await self.repository.heads(limit=limit, offset=offset)

    async def head_at(self, tree_size: int) -> AuditTreeHead | None:
        return await self.repository.head_at(tree_size)

    async def inclusion(self, leaf_index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of a leaf in the tree of `tree_size` leaves, which the log has reached."""
        await self._reached(tree_size)
        if leaf_index >= tree_size:
            raise NotFound(
                Message(
                    "transparency.no-such-leaf",
                    "the tree of {tree_size} leaves has no leaf {leaf_index}",
                    tree_size=tree_size,
                    leaf_index=leaf_index,
                )
            )
        return await self._hashes(merkle.inclusion_ranges(leaf_index, tree_size))

    async def consistency(self, first: int, second: int) -> list[bytes]:
        """The consistency proof from the tree of `first` leaves to the tree of `second`."""
        if first > second:
            raise NotFound(
                Message(
                    "transparency.sizes-out-of-order",
                    "the first tree size ({first}) is larger than the second ({second})",
                    first=first,
                    second=second,
                )
            )
        await self._reached(first)
        await self._reached(second)
        return await self._hashes(merkle.consistency_ranges(first, second))

    async def _reached(self, tree_size: int) -> None:
        if tree_size < 1:
            raise Unprocessable(Message("transparency.empty-tree", "a tree size is at least 1"))
        head = await self.repository.latest_head()
        if head is None or tree_size > head.tree_size:
            raise NotFound(
                Message(
                    "transparency.size-not-reached", "the log has not reached {tree_size} leaves", tree_size=tree_size
                )
            )

    async def _hashes(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        wanted = [piece for start, end in ranges for piece in merkle.pieces(start, end)]
        stored = await self.repository.subtrees(wanted)

        def subtree(level: int, position: int) -> bytes:
            return stored[(level, position)]

        return [merkle.range_hash(start, end, subtree) for start, end in ranges]

    async def entry_proof(self, entry_id: int) -> EntryProof | None:
        """The proof of an entry against the latest head; None when there is no such entry or it is not yet
        a leaf of the tree."""
        entry = await self.repository.entry(entry_id)
        head = await self.repository.latest_head()
        if entry is None or entry.leaf_index is None or head is None:
            return None
        proof = await self._hashes(merkle.inclusion_ranges(entry.leaf_index, head.tree_size))
        return EntryProof(
            body=json.loads(entry.leaf),
            leaf_index=entry.leaf_index,
            tree_size=head.tree_size,
            inclusion=[item.hex() for item in proof],
            tree_head=head.signed,
        )

    async def verify(self) -> LogReport:
        return await verify_log(self.repository, self.notary)


async def verify_log(repository: AuditRepository, notary: Notary) -> LogReport:
    """Recompute the tree from every stored leaf, check every signed head (signature and root) against it, and
    name the first leaf where the log departs from what was signed (marketplace/audit/verification.py)."""
    heads = await repository.all_heads()
    verifier = LogVerifier((head.tree_size, head.root_hash) for head in heads)
    # the columns are compared with the leaves in the database while the leaves are read and hashed here
    unlike = asyncio.create_task(repository.first_leaf_unlike_its_columns())
    try:
        found = await _recompute(repository, heads, verifier, notary)
    except BaseException:
        unlike.cancel()
        raise
    edited = await unlike
    if edited is not None:
        found = first(found, Broken(*edited, "the entry's columns are not its leaf text (an edit)"))
    latest = heads[-1] if heads else None
    return LogReport(
        ok=found is None,
        entries=verifier.entries,
        tree_size=latest.tree_size if latest else 0,
        root_hash=latest.root_hash if latest else None,
        heads=len(heads),
        verified_size=verifier.verified_size,
        first_broken_leaf=found.leaf if found else None,
        entry_id=found.entry_id if found else None,
        reason=found.reason if found else None,
    )


async def _recompute(
    repository: AuditRepository, heads: Sequence[AuditTreeHead], verifier: LogVerifier, notary: Notary
) -> Broken | None:
    """Every head's signature, then every stored leaf in batches: the first break, if any."""
    try:
        for head in heads:
            _check_signature(head, notary)
        last = await repository.last_leaf()
        end = max(heads[-1].tree_size if heads else 0, -1 if last is None else last + 1)
        await _feed_all(repository, verifier, end)
        verifier.finish()
    except Broken as stop:
        return stop
    return None


async def _feed_all(repository: AuditRepository, verifier: LogVerifier, end: int) -> None:
    """Leaves [0, end) in batches, each batch read while the one before is hashed: its query is sent before
    the hashing starts, so the database works on it meanwhile."""
    bounds = [(start, min(end, start + VERIFY_BATCH)) for start in range(0, end, VERIFY_BATCH)]
    reading: asyncio.Task[tuple[Sequence[Any], bytes]] | None = None
    try:
        for index, (start, stop) in enumerate(bounds):
            batch = await reading if reading else await repository.leaves(start, stop)
            reading = None
            if index + 1 < len(bounds):
                reading = asyncio.create_task(repository.leaves(*bounds[index + 1]))
                await asyncio.sleep(0)  # lets it send its query
            verifier.feed(*batch)
    finally:
        if reading is not None:  # a break was found: the read under way ends before the connection is used again
            await reading


def _check_signature(head: AuditTreeHead, notary: Notary) -> None:
    expected = {"tree_size": head.tree_size, "root_hash": head.root_hash, "timestamp": rfc3339(head.published_at)}
    try:
        signed = jws.verify(head.signed, notary.jwks(), TREE_HEAD_TYPE)
    except jws.JWSInvalid as invalid:
        raise Broken(head.tree_size, None, f"the head of {head.tree_size} leaves: {invalid}") from None
    if signed != expected:
        raise Broken(head.tree_size, None, f"the head of {head.tree_size} leaves is not what its signature signed")

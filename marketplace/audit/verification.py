"""Verification of the transparency log, pure: the tree recomputed from the stored leaves in leaf order, each
signed head's root checked at its size, and the first place the stored log departs from what was signed.

What locates a break (README, "What the log proves"):
- a leaf index missing from the run 0, 1, 2, ... (a deletion) or met twice (an insertion): that index;
- a leaf whose text does not hash to the leaf hash the sequencer stored for its index (an edit of the text, an
  entry moved to another index, an entry added without the sequencer): that leaf;
- a leaf whose columns are not what its text says (an edit of the columns): that leaf (checked beside this,
  in the database: see AuditRepository.first_leaf_unlike_its_columns);
- a head whose root the recomputed tree does not give (text and stored hashes both rewritten): a range, from the
  largest head that matched to that head's size;
- a head larger than the stored leaves (a truncation): the first missing leaf."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from marketplace.kit import merkle


@dataclass(frozen=True)
class LogReport:
    """What verification found. `first_broken_leaf` is the first leaf index where the stored log departs from
    what was signed (`entry_id` the entry stored there, if any); `reason` says what was found there. A break
    found only by a head's root lies among the leaves from `verified_size` (the largest head that matched) up to
    that head's size."""

    ok: bool
    entries: int
    tree_size: int
    root_hash: str | None
    heads: int
    verified_size: int
    first_broken_leaf: int | None
    entry_id: int | None
    reason: str | None


class Broken(Exception):
    def __init__(self, leaf: int, entry_id: int | None, reason: str) -> None:
        super().__init__(reason)
        self.leaf, self.entry_id, self.reason = leaf, entry_id, reason


class LogVerifier:
    """Feed the stored leaves in leaf order, in batches of (leaf index, entry id, leaf text in UTF-8) rows, then
    `finish`; the first break raises `Broken`. `heads` are the signed (tree size, hex root) pairs."""

    def __init__(self, heads: Iterable[tuple[int, str]]) -> None:
        self.frontier = merkle.Frontier()
        self.heads = sorted(heads, reverse=True)  # popped smallest first
        self.verified_size = 0

    @property
    def entries(self) -> int:
        return self.frontier.size

    def feed(self, rows: Sequence[Sequence[Any]], stored: bytes) -> None:
        """The next rows in leaf order (at most as many as the power of two the tree's size is a multiple of), and
        the leaf hashes the tree stored from the first row's index on, joined. The indexes and the hashes are
        checked for the whole batch at once (a row at a time only to name a break), and the batch's perfect
        subtrees are hashed level by level."""
        start, sha256 = self.frontier.size, hashlib.sha256
        hashes = [sha256(b"\x00" + leaf).digest() for _, _, leaf in rows]
        if [row[0] for row in rows] != list(range(start, start + len(rows))) or b"".join(hashes) != stored:
            self._locate(rows, hashes, stored)
        levels = merkle.subtree_levels(hashes)

        def subtrees(end: int) -> list[bytes]:
            return [levels[level][position - (start >> level)] for level, position in merkle.pieces(start, end)]

        while self.heads and self.heads[-1][0] <= start + len(hashes):
            size, root = self.heads.pop()
            if self.frontier.root_with(subtrees(size)).hex() != root:
                raise Broken(
                    self.verified_size,
                    None,
                    f"the tree of {size} leaves is not the one its head signed: an entry from leaf "
                    f"{self.verified_size} to {size - 1} changed, with the hashes stored for it",
                )
            self.verified_size = size
        for level, position in merkle.pieces(start, start + len(hashes)):
            self.frontier.append_subtree(level, levels[level][position - (start >> level)])

    def _locate(self, rows: Sequence[Sequence[Any]], hashes: list[bytes], stored: bytes) -> None:
        size = self.frontier.size
        for offset, ((leaf_index, entry_id, _), hashed) in enumerate(zip(rows, hashes, strict=True)):
            expected = size + offset
            if leaf_index < expected:
                raise Broken(leaf_index, entry_id, "a second entry stored at this leaf index (an insertion)")
            if leaf_index > expected:
                raise Broken(
                    expected, None, f"no entry stored at leaf indexes {expected} to {leaf_index - 1} (a deletion)"
                )
            kept = stored[32 * offset : 32 * offset + 32]
            if not kept:
                raise Broken(expected, entry_id, "the tree stored no leaf here: the sequencer never added it")
            if hashed != kept:
                raise Broken(expected, entry_id, "the leaf text is not the leaf the tree stored (an edit or a move)")

    def finish(self) -> None:
        if self.heads:
            size, signed = self.frontier.size, self.heads[0][0]
            raise Broken(size, None, f"the log ends at {size} leaves but a head of {signed} was signed (a truncation)")


def first(*found: Broken | None) -> Broken | None:
    """The break at the lowest leaf of those found."""
    return min((stop for stop in found if stop is not None), key=lambda stop: stop.leaf, default=None)

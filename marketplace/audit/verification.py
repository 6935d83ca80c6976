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
    """Feed the stored leaves in leaf order, (leaf index, entry id, leaf text, stored leaf hash or None) rows,
    then `finish`; the first break raises `Broken`. `heads` are the signed (tree size, hex root) pairs."""

    def __init__(self, heads: Iterable[tuple[int, str]]) -> None:
        self.frontier = merkle.Frontier()
        self.heads = sorted(heads, reverse=True)  # popped smallest first
        self.verified_size = 0

    @property
    def entries(self) -> int:
        return self.frontier.size

    def feed(self, rows: Iterable[Sequence[Any]]) -> None:
        frontier, leaf_hash = self.frontier, merkle.leaf_hash
        due = self.heads[-1][0] if self.heads else -1
        for leaf_index, entry_id, leaf, stored in rows:
            size = frontier.size
            if leaf_index != size:
                if leaf_index < size:
                    raise Broken(leaf_index, entry_id, "a second entry stored at this leaf index (an insertion)")
                raise Broken(size, None, f"no entry stored at leaf indexes {size} to {leaf_index - 1} (a deletion)")
            hashed = leaf_hash(leaf.encode())
            if hashed != stored:
                if stored is None:
                    raise Broken(size, entry_id, "the tree stored no leaf here: the sequencer never added it")
                raise Broken(
                    size, entry_id, "the entry's leaf text is not the leaf the tree stored (an edit or a move)"
                )
            frontier.append(hashed)
            if frontier.size == due:
                self._check_head()
                due = self.heads[-1][0] if self.heads else -1

    def _check_head(self) -> None:
        size, root = self.heads.pop()
        if self.frontier.root().hex() != root:
            raise Broken(
                self.verified_size,
                None,
                f"the tree of {size} leaves is not the one its head signed: an entry from leaf "
                f"{self.verified_size} to {size - 1} changed, with the hashes stored for it",
            )
        self.verified_size = size

    def finish(self) -> None:
        if self.heads:
            size, signed = self.frontier.size, self.heads[0][0]
            raise Broken(size, None, f"the log ends at {size} leaves but a head of {signed} was signed (a truncation)")


def first(*found: Broken | None) -> Broken | None:
    """The break at the lowest leaf of those found."""
    return min((stop for stop in found if stop is not None), key=lambda stop: stop.leaf, default=None)

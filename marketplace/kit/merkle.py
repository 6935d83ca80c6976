"""Merkle trees with the structure of RFC 9162 (certificate transparency v2), section 2.1: leaf and node hashes,
the tree's root, inclusion and consistency proofs and their verification. Pure: no I/O.

A tree of n leaves is built from perfect subtrees: the subtree (level, index) holds the 2**level leaves from
index * 2**level. Every hash a proof needs is the hash of a range of leaves that starts on such a boundary,
so it folds from a few perfect subtrees (`range_hash`): a log that keeps each perfect subtree's hash answers
a proof with O(log n) lookups, never a rebuild."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

# A perfect subtree: (level, index); it covers leaves [index << level, (index + 1) << level).
Subtree = tuple[int, int]
SubtreeHashes = Callable[[int, int], bytes]
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than size (size > 1): where RFC 9162 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def pieces(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees that make up leaves [start, end), largest first. `start` must be a multiple of the
    largest power of two not above end - start, which holds for every range a proof uses."""
    found: list[Subtree] = []
    while start < end:
        level = (end - start).bit_length() - 1
        found.append((level, start >> level))
        start += 1 << level
    return found


def range_hash(start: int, end: int, subtree: SubtreeHashes) -> bytes:
    """The Merkle tree hash of leaves [start, end), from the hashes of its perfect subtrees."""
    parts = [subtree(level, index) for level, index in pieces(start, end)]
    folded = parts[-1]
    for part in reversed(parts[:-1]):
        folded = node_hash(part, folded)
    return folded


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make the inclusion proof of leaf `index` in a tree of `size` leaves
    (RFC 9162 2.1.3.1, PATH), nearest the leaf first."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return ranges[::-1]


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make the consistency proof from a tree of `first` leaves to one of
    `second` (RFC 9162 2.1.4.1, SUBPROOF with b = true), in proof order."""
    if not 0 < first <= second:
        raise ValueError("tree sizes out of order")
    ranges: list[tuple[int, int]] = []
    start, end, whole = 0, second, True
    m = first
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))
    return ranges[::-1]


def _from_leaves(leaf_hashes: Sequence[bytes]) -> SubtreeHashes:
    def subtree(level: int, index: int) -> bytes:
        return root(leaf_hashes[index << level : (index + 1) << level])

    return subtree


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the leaves (RFC 9162 2.1.1)."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append(leaf)
    return frontier.root()


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    subtree = _from_leaves(leaf_hashes)
    return [range_hash(start, end, subtree) for start, end in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(first: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    subtree = _from_leaves(leaf_hashes)
    return [range_hash(start, end, subtree) for start, end in consistency_ranges(first, len(leaf_hashes))]


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _shift_while_even(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first_size: int, second_size: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2 (a first tree of no leaves is refused: it is consistent with any tree)."""
    if not 0 < first_size <= second_size:
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = [first_root, *proof] if first_size & (first_size - 1) == 0 else list(proof)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


def subtree_levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every perfect subtree over the given leaf hashes, level by level: level 0 is the hashes, level k + 1 the
    parents of level k's complete pairs. For leaves that start at a multiple of a power of two at least as large
    as their number, level k's item i is the subtree (k, first leaf's position >> k plus i)."""
    sha256, levels = hashlib.sha256, [list(hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        pairs = zip(below[::2], below[1::2], strict=False)  # an odd last item waits for its pair
        levels.append([sha256(b"\x01" + left + right).digest() for left, right in pairs])
    return levels


class Frontier:
    """A tree grown leaf by leaf: the hashes of the perfect subtrees its leaves make (the binary digits of its
    size), enough to append and to give the root. `completed` lists every perfect subtree finished since it was
    last emptied, for a log that stores them."""

    def __init__(self, size: int = 0, subtrees: Iterable[bytes] = (), *, keep: bool = False) -> None:
        """`subtrees`: the hashes of `pieces(0, size)`, largest first."""
        self.size = size
        self.stack = list(subtrees)
        self.keep = keep
        self.completed: list[tuple[int, int, bytes]] = []
        if len(self.stack) != size.bit_count():
            raise ValueError("a tree's frontier has one subtree per binary digit of its size")

    def append_subtree(self, level: int, subtree: bytes) -> None:
        """Append the 2**level leaves whose perfect subtree hashes to `subtree` (the size must be a multiple of
        2**level); completed subtrees are not kept."""
        stack, position = self.stack, self.size >> level
        while position & 1:
            subtree = node_hash(stack.pop(), subtree)
            position >>= 1
        stack.append(subtree)
        self.size += 1 << level

    def root_with(self, subtrees: Iterable[bytes]) -> bytes:
        """The root of this tree grown by the perfect subtrees given, largest first, that follow its last leaf
        (without growing it)."""
        parts = [*self.stack, *subtrees]
        if not parts:
            return EMPTY_ROOT
        folded = parts[-1]
        for part in reversed(parts[:-1]):
            folded = node_hash(part, folded)
        return folded

    def append(self, leaf: bytes) -> None:
        stack, index = self.stack, self.size
        if self.keep:
            self.completed.append((0, index, leaf))
        level = 0
        while index & 1:
            leaf = node_hash(stack.pop(), leaf)
            index >>= 1
            level += 1
            if self.keep:
                self.completed.append((level, index, leaf))
        stack.append(leaf)
        self.size += 1

    def root(self) -> bytes:
        return self.root_with(())

"""Properties of the RFC 9162 Merkle tree: the root is the RFC's recursive definition, every inclusion and
consistency proof verifies, and a proof for anything else does not."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.kit import merkle

leaves = st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True).map(
    lambda items: [merkle.leaf_hash(item) for item in items]
)


def rfc_root(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1, word for word: split at the largest power of two smaller than the size."""
    if not hashes:
        return merkle.EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return merkle.node_hash(rfc_root(hashes[:k]), rfc_root(hashes[k:]))


def test_known_hashes() -> None:
    """The RFC's domain separation: a leaf is SHA-256(0x00 || data), a node SHA-256(0x01 || left || right)."""
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    left, right = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.root([left, right]) == merkle.node_hash(left, right) != merkle.node_hash(right, left)


@settings(max_examples=60)
@given(leaves)
def test_the_root_is_the_rfc_definition(hashes: list[bytes]) -> None:
    assert merkle.root(hashes) == rfc_root(hashes)


@settings(max_examples=60)
@given(leaves, st.data())
def test_every_inclusion_proof_verifies_and_no_other_leaf_passes(hashes: list[bytes], data: st.DataObject) -> None:
    size = len(hashes)
    root = merkle.root(hashes)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(index, hashes)
    assert merkle.verify_inclusion(hashes[index], index, size, proof, root)
    other = data.draw(st.integers(0, size - 1))
    if other != index:
        assert not merkle.verify_inclusion(hashes[other], index, size, proof, root)
        assert not merkle.verify_inclusion(hashes[index], other, size, proof, root)
    if proof:
        bent = [*proof[:-1], merkle.leaf_hash(proof[-1])]
        assert not merkle.verify_inclusion(hashes[index], index, size, bent, root)


@settings(max_examples=60)
@given(leaves, st.data())
def test_every_consistency_proof_verifies_and_a_rewritten_past_fails(hashes: list[bytes], data: st.DataObject) -> None:
    second = len(hashes)
    first = data.draw(st.integers(1, second))
    proof = merkle.consistency_proof(first, hashes)
    first_root, second_root = merkle.root(hashes[:first]), merkle.root(hashes)
    assert merkle.verify_consistency(first, second, first_root, second_root, proof)
    # a tree whose first leaves were rewritten is not consistent with the first tree
    changed = data.draw(st.integers(0, first - 1))
    rewritten = [*hashes[:changed], merkle.leaf_hash(hashes[changed]), *hashes[changed + 1 :]]
    assert not merkle.verify_consistency(first, second, first_root, merkle.root(rewritten), proof)
    assert not merkle.verify_consistency(
        first, second, first_root, merkle.root(rewritten), merkle.consistency_proof(first, rewritten)
    )
    assert not merkle.verify_consistency(second, first, second_root, first_root, proof) or first == second


@settings(max_examples=40)
@given(leaves, st.data())
def test_proofs_from_stored_subtrees_are_the_proofs_from_leaves(hashes: list[bytes], data: st.DataObject) -> None:
    """What a log stores as it grows (every completed perfect subtree) answers every proof of every size."""
    cut = data.draw(st.integers(0, len(hashes)))
    grown = merkle.Frontier(keep=True)
    for leaf in hashes[:cut]:
        grown.append(leaf)
    stored = {(level, position): hash for level, position, hash in grown.completed}
    resumed = merkle.Frontier(cut, [stored[piece] for piece in merkle.pieces(0, cut)], keep=True)
    for leaf in hashes[cut:]:
        resumed.append(leaf)
    stored |= {(level, position): hash for level, position, hash in resumed.completed}
    assert resumed.root() == merkle.root(hashes)

    def subtree(level: int, position: int) -> bytes:
        return stored[(level, position)]

    size = data.draw(st.integers(1, len(hashes)))
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(1, size))
    inclusion = [merkle.range_hash(a, b, subtree) for a, b in merkle.inclusion_ranges(index, size)]
    consistency = [merkle.range_hash(a, b, subtree) for a, b in merkle.consistency_ranges(first, size)]
    assert inclusion == merkle.inclusion_proof(index, hashes[:size])
    assert consistency == merkle.consistency_proof(first, hashes[:size])

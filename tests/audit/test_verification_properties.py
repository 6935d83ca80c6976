"""Property: for random logs and signed heads, an untouched log verifies, and every edit, deletion, insertion,
reordering or truncation of its stored leaves is detected and located at the leaf README's "What the log proves"
says (a rewrite of a leaf together with its stored hash: at the largest head below it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.audit.verification import Broken, LogVerifier
from marketplace.kit import merkle

BATCH = 4  # small, so that logs span many batches, as the service's 16,384 do with real logs


@dataclass
class StoredLog:
    rows: list[tuple[int, int, str]]  # (leaf index, entry id, leaf text), as the entries table holds them
    stored: dict[int, bytes]  # the leaf hashes the sequencer stored, by leaf index
    heads: list[tuple[int, str]] = field(default_factory=list)

    def verify(self) -> int | None:
        """The leaf the verifier names, None when it finds nothing (the service's loop, in memory)."""
        verifier = LogVerifier(self.heads)
        end = max([size for size, _ in self.heads] + [index + 1 for index, _, _ in self.rows], default=0)
        try:
            for start in range(0, end, BATCH):
                batch = sorted(row for row in self.rows if start <= row[0] < start + BATCH)
                rows = [(index, entry_id, text.encode()) for index, entry_id, text in batch]  # as the database gives
                stored = b"".join(self.stored[index] for index in range(start, start + BATCH) if index in self.stored)
                verifier.feed(rows, stored)
            verifier.finish()
        except Broken as broken:
            return broken.leaf
        return None


def make_log(texts: list[str], head_sizes: set[int]) -> StoredLog:
    hashes = [merkle.leaf_hash(text.encode()) for text in texts]
    heads = [(size, merkle.root(hashes[:size]).hex()) for size in sorted(head_sizes | {len(texts)})]
    return StoredLog([(i, 100 + i, text) for i, text in enumerate(texts)], dict(enumerate(hashes)), heads)


logs = st.lists(st.integers(0, 10**6), min_size=1, max_size=40, unique=True).flatmap(
    lambda numbers: st.tuples(
        st.just([f'{{"id":{100 + i},"n":{n}}}' for i, n in enumerate(numbers)]),
        st.sets(st.integers(1, len(numbers))),
    )
)


@settings(max_examples=100)
@given(logs)
def test_an_untouched_log_verifies(log: tuple[list[str], set[int]]) -> None:
    assert make_log(*log).verify() is None


TAMPERINGS = ["edit", "rewrite", "delete", "insert", "append", "swap", "truncate"]


@settings(max_examples=400)
@given(logs, st.sampled_from(TAMPERINGS), st.data())
def test_every_tampering_is_detected_and_located(
    log: tuple[list[str], set[int]], tampering: str, data: st.DataObject
) -> None:
    stored = make_log(*log)
    size = len(stored.rows)
    k = data.draw(st.integers(0, size - 1), label="leaf")
    forged = stored.rows[k][2].replace('"n":', '"n":1')
    expected = k
    if tampering == "edit":  # the text changed, the stored hash not
        stored.rows[k] = (k, stored.rows[k][1], forged)
    elif tampering == "rewrite":  # the text and the hash the sequencer stored both rewritten: only a head tells
        stored.rows[k] = (k, stored.rows[k][1], forged)
        stored.stored[k] = merkle.leaf_hash(forged.encode())
        expected = max((head for head, _ in stored.heads if head <= k), default=0)
    elif tampering == "delete":
        del stored.rows[k]
    elif tampering == "insert":  # a second entry at an index taken (its unique constraint dropped)
        stored.rows.append((k, 999, forged))
    elif tampering == "append":  # an entry past the tree, never added by the sequencer
        stored.rows.append((size, 999, forged))
        expected = size
    elif tampering == "swap":
        j = data.draw(st.integers(0, size - 1).filter(lambda j: j != k), label="other") if size > 1 else k
        if j == k:
            return
        (_, id_k, text_k), (_, id_j, text_j) = stored.rows[k], stored.rows[j]
        stored.rows[k], stored.rows[j] = (k, id_j, text_j), (j, id_k, text_k)
        expected = min(j, k)
    elif tampering == "truncate":
        del stored.rows[k:]
    assert stored.verify() == expected

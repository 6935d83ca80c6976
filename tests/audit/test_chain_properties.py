"""Property: every single edit, deletion, insertion or reordering of stored audit entries is
detected, and the verifier names the first broken sequence number."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.audit.chain import (
    GENESIS_HASH,
    ChainEntry,
    entry_hash,
    format_time,
    text_before_seq,
    verify_chain,
)

START = datetime(2026, 1, 1, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
payloads = st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4)
bodies = st.fixed_dictionaries(
    {
        "actor": st.sampled_from(["system", "cli", "user:1", "api_key:2"]),
        "action": st.sampled_from(["user.registered", "organization.created", "order.paid"]),
        "object_type": st.sampled_from(["user", "organization", "order"]),
        "object_id": st.text(min_size=1, max_size=10),
        "payload": payloads,
    }
)


def build_chain(items: list[dict[str, Any]]) -> list[ChainEntry]:
    chain: list[ChainEntry] = []
    prev = GENESIS_HASH
    for index, item in enumerate(items):
        entry = seal(seq=index + 1, at=START + timedelta(seconds=index), prev_hash=prev, **item)
        chain.append(entry)
        prev = entry.hash
    return chain


def seal(**fields: Any) -> ChainEntry:
    """An entry whose own hash is right for its content and prev_hash (what a forger would make)."""
    draft = ChainEntry(**fields, hash="")
    return dataclasses.replace(draft, hash=entry_hash(draft.prev_hash, draft.body()))


def verify(entries: list[ChainEntry], original: list[ChainEntry]) -> tuple[bool, int | None]:
    head_seq = len(original)
    head_hash = original[-1].hash if original else GENESIS_HASH
    report = verify_chain(entries, head_seq, head_hash)
    return report.ok, report.first_broken_seq


@settings(max_examples=300)
@given(st.lists(bodies, min_size=0, max_size=12))
def test_untouched_chain_verifies(items: list[dict[str, Any]]) -> None:
    chain = build_chain(items)
    assert verify(chain, chain) == (True, None)


EDITABLE = ["seq", "at", "actor", "action", "object_type", "object_id", "payload", "prev_hash", "hash"]


def changed_value(entry: ChainEntry, field: str, data: st.DataObject) -> Any:
    current = getattr(entry, field)
    if field == "seq":
        return data.draw(st.integers(-5, 10_000).filter(lambda v: v != current))
    if field == "at":
        return current + timedelta(microseconds=data.draw(st.integers(1, 10**9)))
    if field == "payload":
        return data.draw(payloads.filter(lambda p: p != current))
    if field in {"prev_hash", "hash"}:
        return data.draw(st.text("0123456789abcdef", min_size=64, max_size=64).filter(lambda v: v != current))
    return data.draw(st.text(min_size=1, max_size=10).filter(lambda v: v != current))


@settings(max_examples=400)
@given(st.lists(bodies, min_size=1, max_size=12), st.data())
def test_any_edit_is_detected_at_the_edited_entry(items: list[dict[str, Any]], data: st.DataObject) -> None:
    chain = build_chain(items)
    index = data.draw(st.integers(0, len(chain) - 1))
    field = data.draw(st.sampled_from(EDITABLE))
    tampered = list(chain)
    tampered[index] = dataclasses.replace(chain[index], **{field: changed_value(chain[index], field, data)})
    expected = index + 1
    if data.draw(st.booleans()) and field not in {"hash", "seq", "prev_hash"}:
        # The forger re-seals the edited entry so its own hash fits its content: the chain then
        # breaks at the next link (the following entry, or the recorded head after the last).
        tampered[index] = seal(**{k: v for k, v in dataclasses.asdict(tampered[index]).items() if k != "hash"})
        expected = index + 2 if index + 1 < len(chain) else index + 1
    assert verify(tampered, chain) == (False, expected)


@settings(max_examples=300)
@given(st.lists(bodies, min_size=1, max_size=12), st.data())
def test_any_deletion_is_detected_at_the_deleted_entry(items: list[dict[str, Any]], data: st.DataObject) -> None:
    chain = build_chain(items)
    index = data.draw(st.integers(0, len(chain) - 1))
    tampered = chain[:index] + chain[index + 1 :]
    assert verify(tampered, chain) == (False, index + 1)


@settings(max_examples=300)
@given(st.lists(bodies, min_size=0, max_size=12), bodies, st.data())
def test_any_insertion_is_detected(items: list[dict[str, Any]], forged: dict[str, Any], data: st.DataObject) -> None:
    chain = build_chain(items)
    index = data.draw(st.integers(0, len(chain)))
    prev = chain[index - 1].hash if index else GENESIS_HASH
    at = chain[index - 1].at if index else START
    mode = data.draw(st.sampled_from(["well_forged", "renumbered", "raw"]))
    if mode == "raw":
        # an entry typed in by hand: its hash does not match
        entry = ChainEntry(seq=index + 1, at=at, prev_hash=prev, hash="f" * 64, **forged)
        tampered = [*chain[:index], entry, *chain[index:]]
        expected = index + 1
    else:
        # a forger seals the new entry onto its predecessor; the next original no longer follows it
        entry = seal(seq=index + 1, at=at, prev_hash=prev, **forged)
        rest = chain[index:]
        if mode == "renumbered":  # as a unique sequence column would force
            rest = [dataclasses.replace(e, seq=e.seq + 1) for e in rest]
        tampered = [*chain[:index], entry, *rest]
        expected = index + 2 if index < len(chain) else index + 1
    assert verify(tampered, chain) == (False, expected)


@settings(max_examples=300)
@given(st.lists(bodies, min_size=2, max_size=12), st.data())
def test_any_reordering_is_detected_at_the_first_moved_entry(items: list[dict[str, Any]], data: st.DataObject) -> None:
    chain = build_chain(items)
    order = data.draw(st.permutations(range(len(chain))).filter(lambda p: list(p) != sorted(p)))
    tampered = [chain[i] for i in order]
    first_moved = next(position for position, i in enumerate(order) if i != position)
    assert verify(tampered, chain) == (False, first_moved + 1)


@settings(max_examples=100)
@given(st.lists(bodies, min_size=1, max_size=12), st.data())
def test_swapping_stored_sequence_numbers_is_detected(items: list[dict[str, Any]], data: st.DataObject) -> None:
    """Reordering as a database sees it: rows keep their content, their numbers are swapped."""
    chain = build_chain(items)
    if len(chain) < 2:
        return
    i, j = sorted(data.draw(st.lists(st.integers(0, len(chain) - 1), min_size=2, max_size=2, unique=True)))
    swapped = list(chain)
    swapped[i] = dataclasses.replace(chain[j], seq=chain[i].seq)
    swapped[j] = dataclasses.replace(chain[i], seq=chain[j].seq)
    assert verify(swapped, chain) == (False, i + 1)


def test_time_is_hashed_to_the_microsecond() -> None:
    assert format_time(START + timedelta(microseconds=1)).endswith(".000001+00:00")


@settings(max_examples=200)
@given(bodies, st.integers(1, 10**12), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_the_text_before_the_number_hashes_as_the_entry(item: dict[str, Any], seq: int, prev: str) -> None:
    """What PostgreSQL hashes when it numbers an entry itself (AuditRepository.append): the previous hash,
    the canonical text up to the number, the number and the closing brace, as `entry_hash` hashes the body."""
    body = {**item, "seq": seq, "at": format_time(START)}
    hashed_by_database = hashlib.sha256((prev + text_before_seq(body) + str(seq) + "}").encode()).hexdigest()
    assert hashed_by_database == entry_hash(prev, body)

"""The transparency log from outside: signed tree heads, inclusion and consistency proofs that verify with the
JWKS's notary key alone, an entry's proof, and the refusals of sizes the log has not reached."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from marketplace.audit.service import AuditService
from marketplace.audit.transparency import TREE_HEAD_TYPE
from marketplace.jobs import sequence_audit
from marketplace.kit import jws, merkle
from marketplace.kit.canonical import canonical_json
from tests.fixtures.api import Api


async def append(api: Api, count: int, first: int = 0) -> list[int]:
    async with api.services() as services:
        audit = AuditService(services.session)
        return [
            await audit.record(actor="test", action="test.act", object_type="test", object_id=str(n), payload={"n": n})
            for n in range(first, first + count)
        ]


async def public_head(api: Api, jwks: dict) -> dict:
    head = (await api.client.get("/api/v1/transparency/tree-head")).json()
    signed = jws.verify(head["signed"], jwks, TREE_HEAD_TYPE)
    assert signed["tree_size"] == head["tree_size"]
    assert signed["root_hash"] == head["root_hash"]
    return signed


async def test_proofs_verify_with_the_published_keys_alone(api: Api) -> None:
    assert (await api.client.get("/api/v1/transparency/tree-head")).status_code == 404
    ids = await append(api, 5)
    runtime = api.runtime(settings=api.runtime().settings.model_copy(update={"audit_sequencer_batch": 3}))
    assert await sequence_audit(runtime) == {"integrated_entries": 5}
    more = await append(api, 4, first=5)
    await sequence_audit(runtime)
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    head = await public_head(api, jwks)
    assert head["tree_size"] == 9
    root = bytes.fromhex(head["root_hash"])

    # an entry's proof: its body hashes to the leaf the proof puts in the signed tree
    async with api.services() as services:
        proof = await services.transparency.entry_proof(more[1])
    assert proof is not None
    assert (proof.leaf_index, proof.tree_size, proof.tree_head) == (6, 9, (await latest_signed(api)))
    assert proof.body["id"] == more[1]
    leaf = merkle.leaf_hash(canonical_json(proof.body).encode())
    assert merkle.verify_inclusion(leaf, 6, 9, [bytes.fromhex(item) for item in proof.inclusion], root)

    # by leaf index, over the public API, for every leaf of every size
    heads = (await api.client.get("/api/v1/transparency/tree-heads")).json()
    assert [item["tree_size"] for item in heads["items"]] == [9, 8, 5, 3]  # batches of 3 in each run
    leaves = await stored_leaves(api, ids + more)
    for size in (3, 5, 8, 9):
        size_root = merkle.root(leaves[:size])
        for index in range(size):
            answer = await api.client.get(f"/api/v1/transparency/entries/{index}/inclusion", params={"tree_size": size})
            path = [bytes.fromhex(item) for item in answer.json()["inclusion"]]
            assert merkle.verify_inclusion(leaves[index], index, size, path, size_root)
    signed_roots = {item["tree_size"]: bytes.fromhex(item["root_hash"]) for item in heads["items"]}
    for first, second in ((3, 5), (3, 9), (5, 8), (9, 9), (2, 7)):
        answer = await api.client.get("/api/v1/transparency/consistency", params={"first": first, "second": second})
        path = [bytes.fromhex(item) for item in answer.json()["consistency"]]
        first_root = signed_roots.get(first, merkle.root(leaves[:first]))
        second_root = signed_roots.get(second, merkle.root(leaves[:second]))
        assert merkle.verify_consistency(first, second, first_root, second_root, path)


async def latest_signed(api: Api) -> str:
    return str((await api.client.get("/api/v1/transparency/tree-head")).json()["signed"])


async def stored_leaves(api: Api, ids: list[int]) -> list[bytes]:
    async with api.services() as services:
        entries = [await services.transparency.entry_proof(entry_id) for entry_id in ids]
    return [merkle.leaf_hash(canonical_json(entry.body).encode()) for entry in entries if entry is not None]


async def test_a_pending_entry_has_no_proof_yet(api: Api) -> None:
    [entry_id] = await append(api, 1)
    async with api.services() as services:
        assert await services.transparency.entry_proof(entry_id) is None
        assert await services.transparency.entry_proof(entry_id + 1000) is None


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/entries/0/inclusion", {"tree_size": 0}, 400),
        ("/entries/0/inclusion", {"tree_size": 4}, 404),
        ("/entries/3/inclusion", {"tree_size": 3}, 404),
        ("/entries/0/inclusion", {"tree_size": 2**53}, 400),
        ("/entries/-1/inclusion", {"tree_size": 2}, 400),
        ("/consistency", {"first": 0, "second": 3}, 400),
        ("/consistency", {"first": 3, "second": 2}, 404),
        ("/consistency", {"first": 2, "second": 5}, 404),
        ("/consistency", {"first": "x", "second": 5}, 400),
    ],
)
async def test_sizes_the_log_has_not_reached_are_refused(api: Api, path: str, params: dict, status: int) -> None:
    await append(api, 3)
    await sequence_audit(api.runtime())
    answer = await api.client.get(f"/api/v1/transparency{path}", params=params)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_the_notary_key_is_published_but_never_an_access_token_key(api: Api) -> None:
    runtime = api.runtime()
    keys = (await api.client.get("/.well-known/jwks.json")).json()["keys"]
    notary = [key for key in keys if key["kid"] == runtime.notary.kid]
    assert notary == runtime.notary.jwks()["keys"]
    assert (notary[0]["use"], notary[0]["purpose"]) == ("sig", "notary")
    assert [key for key in keys if key.get("purpose") == "notary"] == notary
    assert runtime.notary.kid != runtime.token_keyring.signing_kid
    person = await api.person()
    claims = jwt.decode(person.token, options={"verify_signature": False})
    forged = runtime.notary.sign(claims, "JWT")
    answer = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    assert json.loads(answer.text)["status"] == 401


def test_a_tree_head_of_another_type_or_key_is_refused(tmp_path: Path) -> None:
    notary = jws.Notary.load(tmp_path / "notary.pem", tmp_path / "retired")
    other = jws.Notary.load(tmp_path / "other.pem", tmp_path / "retired")
    signed = notary.sign({"tree_size": 1}, TREE_HEAD_TYPE)
    assert jws.verify(signed, notary.jwks(), TREE_HEAD_TYPE) == {"tree_size": 1}
    for token, jwks, typ in (
        (signed, notary.jwks(), "JWT"),
        (signed, other.jwks(), TREE_HEAD_TYPE),
        (signed[:-4] + "AAAA", notary.jwks(), TREE_HEAD_TYPE),
        ("not a token", notary.jwks(), TREE_HEAD_TYPE),
        (other.sign({"tree_size": 1}, TREE_HEAD_TYPE), notary.jwks(), TREE_HEAD_TYPE),
    ):
        with pytest.raises(jws.JWSInvalid):
            jws.verify(token, jwks, typ)

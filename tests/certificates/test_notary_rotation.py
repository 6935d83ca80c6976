"""Rotating the notary's key: heads and certificates the retired key signed still verify (with the command, the
certificate route's own check and `marketplace verify-certificate`), new ones are signed by the new key, the
retired key never passes for an access-token key, and a head signed by a key outside the notary's is named by
`marketplace audit verify`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from marketplace.audit.transparency import TREE_HEAD_TYPE
from marketplace.certificates.verification import verify
from marketplace.jobs import sequence_audit
from marketplace.kit import jws
from marketplace.kit.jws import Notary, rotate_notary
from marketplace.wiring import Runtime
from tests.certificates.test_certificates import certificate_of, certified, completed_order, jwks
from tests.orders.conftest import Market

__all__ = ["certified"]

# Prints, after the command's own output, which of these the command loaded.
LOADED = (
    "import sys; from marketplace.cli import main; code = main(sys.argv[1:]);"
    " print(sorted({name.split('.')[0] for name in sys.modules} & {'litestar', 'sqlalchemy'})); sys.exit(code)"
)


def command(runtime: Runtime, keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`marketplace ARGS` in a process of its own, on the tests' database, with the notary keys of `keys`."""
    environment = {
        **os.environ,
        "DATABASE_URL": runtime.settings.database_url,
        "STORAGE_DIR": str(runtime.settings.storage_dir),
        "NOTARY_KEY_PATH": str(keys / "notary.pem"),
        "NOTARY_RETIRED_KEY_DIR": str(keys / "retired"),
    }
    run = [sys.executable, "-c", LOADED, *args]
    return subprocess.run(run, capture_output=True, text=True, cwd=keys, env=environment, timeout=120, check=False)


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


@pytest.fixture
def rotated(market: Market, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, Path, str]:
    """The application's notary key rotated with the command (on a copy of the key: other tests keep theirs),
    and the application running with the result; (its runtime, the keys' directory, the retired kid)."""
    runtime = market.api.runtime()
    (tmp_path / "notary.pem").write_bytes(runtime.settings.notary_key.read_bytes())
    rotation = command(runtime, tmp_path, "notary", "rotate", "--json")
    assert rotation.returncode == 0, rotation.stderr
    kids = json.loads(rotation.stdout.splitlines()[0])
    assert kids["retired_kid"] == runtime.notary.kid != kids["current_kid"]
    notary = Notary.load(tmp_path / "notary.pem", tmp_path / "retired")
    assert notary.kids == [kids["current_kid"], kids["retired_kid"]]
    monkeypatch.setattr(market.api.app.state, "runtime", market.api.runtime(notary=notary))
    return market.api.runtime(), tmp_path, kids["retired_kid"]


async def test_after_a_rotation_old_heads_and_certificates_verify_and_new_ones_are_signed_by_the_new_key(
    market: Market, certified: tuple[str, dict[str, Any]], rotated: tuple[Runtime, Path, str]
) -> None:
    order_id, old = certified
    runtime, keys, retired_kid = rotated
    assert kid_of(old["certificate"]) == retired_kid
    published = await jwks(market)
    notary_kids = [key["kid"] for key in jws.notary_keys(published)["keys"]]
    assert notary_kids == [runtime.notary.kid, retired_kid]
    # the kept certificate, signed by the retired key, passes the route's own check and is answered unchanged
    again = await certificate_of(market, order_id, market.buyer)
    assert again.status_code == 200, again.text
    assert again.json()["certificate"] == old["certificate"]
    (keys / "jwks.json").write_text(json.dumps(published))
    (keys / "old.json").write_text(json.dumps(old))
    checked = command(runtime, keys, "verify-certificate", "old.json", "--jwks", "jwks.json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"signature ok (kid {retired_kid}); tree head ok")
    assert checked.stdout.splitlines()[-1] == "[]"  # neither the database layer nor the web framework

    # new heads and certificates are the new key's; the log holds heads of both keys
    new_order = await completed_order(market)
    await sequence_audit(runtime)
    head = (await market.api.client.get("/api/v1/transparency/tree-head")).json()["signed"]
    assert kid_of(head) == runtime.notary.kid
    new = await certificate_of(market, new_order, market.provider)
    assert new.status_code == 200, new.text
    assert kid_of(new.json()["certificate"]) == runtime.notary.kid
    assert verify(new.json()["certificate"], published).ok
    verified = command(runtime, keys, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads("\n".join(verified.stdout.splitlines()[:-1]))
    assert (report["ok"], report["verified_size"]) == (True, report["tree_size"])
    assert verified.stdout.splitlines()[-1] == "['sqlalchemy']"  # the database layer, not the web framework
    async with market.api.services() as services:
        signers = {kid_of(head.signed) for head in await services.transparency.repository.all_heads()}
    assert signers == {retired_kid, runtime.notary.kid}


async def test_a_retired_notary_key_is_never_an_access_token_key(
    market: Market, rotated: tuple[Runtime, Path, str]
) -> None:
    runtime, keys, retired_kid = rotated
    retired = jws.load_private_key(market.api.app.state.runtime.settings.notary_key)  # the copy's original
    assert jws.key_id(retired.public_key()) == retired_kid
    claims = jwt.decode(market.buyer.token, options={"verify_signature": False})
    forged = jwt.encode(claims, retired, algorithm=jws.ALGORITHM, headers={"kid": retired_kid})
    answer = await market.api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    assert retired_kid not in runtime.token_keyring.verification_keys
    # nor can a deployment make it one
    retired_public = keys / "retired" / f"{retired_kid}.pem"
    settings = runtime.settings.model_copy(update={"jwt_retired_public_keys": (retired_public,)})
    with pytest.raises(ValueError, match="never access-token keys"):
        Runtime.start(settings)


async def test_a_head_signed_by_a_key_that_is_not_the_notarys_fails_verification_and_is_named(market: Market) -> None:
    await completed_order(market)
    await sequence_audit(market.api.runtime())
    async with market.api.services() as services:
        head = await services.transparency.latest_head()
        assert head is not None
        signed = jws.verify(head.signed, services.runtime.notary.jwks(), TREE_HEAD_TYPE)
        stranger = Notary(Ed25519PrivateKey.generate())
        forged = stranger.sign(signed, TREE_HEAD_TYPE)
        await services.session.execute(
            text("UPDATE audit_tree_head SET signed = :forged WHERE tree_size = :size"),
            {"forged": forged, "size": head.tree_size},
        )
    async with market.api.services() as services:
        report = await services.transparency.verify()
    assert not report.ok
    assert report.reason == (
        f"the head of {head.tree_size} leaves: signed by key {stranger.kid}, which the JWKS does not hold"
    )


def test_a_rotation_cut_short_leaves_the_old_key_current_and_a_missing_key_is_not_rotated(tmp_path: Path) -> None:
    key, retired = tmp_path / "notary.pem", tmp_path / "retired"
    with pytest.raises(FileNotFoundError):
        rotate_notary(key, retired)
    notary = Notary.load(key, retired)
    # the retired copy written, the current key not yet replaced: one key, current, signing as before
    retired.mkdir()
    (retired / f"{notary.kid}.pem").write_bytes(jws.public_pem(jws.load_private_key(key).public_key()))
    again = Notary.load(key, retired)
    assert (again.kids, len(again.jwks()["keys"])) == ([notary.kid], 1)
    old, new = rotate_notary(key, retired)
    assert (old, Notary.load(key, retired).kids) == (notary.kid, [new, notary.kid])
    assert sorted(path.name for path in retired.iterdir()) == [f"{notary.kid}.pem"]

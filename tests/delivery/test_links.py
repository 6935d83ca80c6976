"""Signed download links on their own (no database, no app): valid links verify with the right claims,
including across a key rotation, and every mutated link is refused with the one generic message.

The endpoint's part (a link for a revoked licence, for someone who is no longer a member) is in
test_download_links.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.delivery.links import (
    CLOCK_SKEW_SECONDS,
    LINK_PARAMETERS,
    MAX_TTL_SECONDS,
    DownloadKeyring,
    InvalidLink,
    SignedLink,
)

GENERIC = "the download link is invalid or has expired"
KID = r"[A-Za-z0-9_-]{1,32}"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Fixed secrets, so that a failing example hypothesis replays signs the same bytes again.
OLD_SECRET = hashlib.sha256(b"old download key").digest()
NEW_SECRET = hashlib.sha256(b"new download key").digest()
# Before the rotation: k1 signs. After it: k2 signs, k1 still verifies the links made before.
BEFORE = DownloadKeyring({"k1": OLD_SECRET}, "k1")
AFTER = DownloadKeyring({"k1": OLD_SECRET, "k2": NEW_SECRET}, "k2")
# Someone else's keyrings that happen to use our key ids.
IMPOSTORS = {
    kid: DownloadKeyring({kid: hashlib.sha256(b"impostor " + kid.encode()).digest()}, kid) for kid in ("k1", "k2")
}
EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
ZONES = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]


@dataclass(frozen=True)
class Case:
    licence: uuid.UUID
    user: uuid.UUID
    sha256: str
    signed_at: datetime
    ttl: int
    signer: DownloadKeyring
    link: SignedLink

    @property
    def expires(self) -> int:
        return int(self.link.params["expires"])


@st.composite
def cases(draw: st.DrawFn) -> Case:
    licence, user = draw(st.uuids()), draw(st.uuids())
    sha256 = draw(st.binary(min_size=32, max_size=32)).hex()
    since_2000 = timedelta(microseconds=draw(st.integers(0, 200 * 365 * 86_400 * 10**6)))
    signed_at = (EPOCH_2000 + since_2000).astimezone(draw(st.sampled_from(ZONES)))
    ttl = draw(st.integers(1, MAX_TTL_SECONDS))
    signer = draw(st.sampled_from([BEFORE, AFTER]))
    link = signer.sign(licence, user, sha256, signed_at, ttl)
    return Case(licence, user, sha256, signed_at, ttl, signer, link)


def at(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


# --- valid links -------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(case=cases(), data=st.data())
def test_a_valid_link_verifies_with_its_claims_until_the_last_moment(case: Case, data: st.DataObject) -> None:
    expires_at = case.link.expires_at
    assert case.link.params["expires"] == str(int(case.signed_at.timestamp()) + case.ttl)
    assert expires_at == at(case.expires)
    assert timedelta(seconds=case.ttl - 1) < expires_at - case.signed_at <= timedelta(seconds=case.ttl)
    assert set(case.link.params) == LINK_PARAMETERS
    # Any moment from signing to one microsecond before the expiry, in any zone.
    moment = data.draw(
        st.sampled_from(
            [
                case.signed_at,
                expires_at - timedelta(microseconds=1),
                case.signed_at + (expires_at - case.signed_at) / 2,
            ]
        )
    ).astimezone(data.draw(st.sampled_from(ZONES)))
    claims = AFTER.verify(case.licence, case.link.params, moment)  # the rotated keyring verifies both kids
    assert claims.licence_id == case.licence
    assert claims.user_id == case.user
    assert claims.sha256 == case.sha256
    assert claims.expires_at == expires_at
    assert claims.key_id == case.signer.current_key_id


def test_the_signed_message_is_the_documented_canonical_string() -> None:
    """Version tag, kid, licence, user, sha256 and expiry, one a line, HMAC-SHA256, unpadded base64url."""
    licence, user, sha = uuid.uuid4(), uuid.uuid4(), hashlib.sha256(b"data").hexdigest()
    link = AFTER.sign(licence, user, sha, datetime(2030, 1, 1, tzinfo=UTC), 600)
    expires = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) + 600
    message = f"dl1\nk2\n{licence}\n{user}\n{sha}\n{expires}".encode()
    expected = base64.urlsafe_b64encode(hmac.digest(NEW_SECRET, message, "sha256")).rstrip(b"=").decode()
    assert link.params == {"user": str(user), "sha256": sha, "expires": str(expires), "kid": "k2", "sig": expected}


def test_expiry_is_exclusive_and_the_skew_allowance_is_exact() -> None:
    licence, user, sha, start = uuid.uuid4(), uuid.uuid4(), "0" * 64, 1_900_000_000
    link = AFTER.sign(licence, user, sha, at(start), MAX_TTL_SECONDS)
    expires = start + MAX_TTL_SECONDS
    assert AFTER.verify(licence, link.params, at(expires - 0.000001)).user_id == user
    for moment in (expires, expires + 1, expires + 86_400):
        with pytest.raises(InvalidLink) as refused:
            AFTER.verify(licence, link.params, at(moment))
        assert refused.value.reason == "expired"
    # A link living the longest we sign for, plus the skew allowance, is accepted; one second more is not.
    ahead = AFTER.sign(licence, user, sha, at(start + CLOCK_SKEW_SECONDS), MAX_TTL_SECONDS)
    assert AFTER.verify(licence, ahead.params, at(start)).user_id == user
    too_far = AFTER.sign(licence, user, sha, at(start + CLOCK_SKEW_SECONDS + 1), MAX_TTL_SECONDS)
    with pytest.raises(InvalidLink) as refused:
        AFTER.verify(licence, too_far.params, at(start))
    assert refused.value.reason == "expiry too far ahead"


# --- mutated links -----------------------------------------------------------------------------------

MUTATIONS = [
    "expired at the exact expiry",
    "expired by one second",
    "expired by more",
    "licence in the path",
    "user",
    "sha256",
    "expires later",
    "expires earlier",
    "kid of the other existing key",
    "unknown kid",
    "malformed kid",
    "signature bit flip",
    "signature truncated",
    "signature extended",
    "signature re-encoded",
    "same kid, another secret",
    "parameter dropped",
    "parameter added",
    "parameter renamed",
    "user spelled differently",
    "sha256 spelled differently",
    "expires spelled differently",
    "expiry too far ahead (leaked key)",
    "not a single text value",
]
EXAMPLES_PER_MUTATION = 90


Mutant = tuple[uuid.UUID, dict[str, Any], datetime]


def mutate(case: Case, kind: str, data: st.DataObject) -> tuple[list[Mutant], set[str]]:
    """The link changed one way (or, for the spellings of one value, each of several ways): the licence
    id to verify, the parameters and the moment of each mutant, and the reasons it may be refused for."""
    params: dict[str, Any] = dict(case.link.params)
    licence, moment, expires = case.licence, case.signed_at, case.expires
    raw_sig = base64.urlsafe_b64decode(params["sig"] + "=")
    if kind == "expired at the exact expiry":
        return [(licence, params, at(expires))], {"expired"}
    if kind == "expired by one second":
        return [(licence, params, at(expires + 1))], {"expired"}
    if kind == "expired by more":
        late = data.draw(st.integers(2, 10**8)) + data.draw(st.integers(0, 999_999)) / 1e6
        return [(licence, params, at(expires + late))], {"expired"}
    if kind == "licence in the path":
        licence = data.draw(st.uuids().filter(lambda u: u != case.licence))
        return [(licence, params, moment)], {"bad signature"}
    if kind == "user":
        params["user"] = str(data.draw(st.uuids().filter(lambda u: u != case.user)))
        return [(licence, params, moment)], {"bad signature"}
    if kind == "sha256":
        position = data.draw(st.integers(0, 63))
        digit = data.draw(st.sampled_from("0123456789abcdef").filter(lambda d: d != case.sha256[position]))
        params["sha256"] = case.sha256[:position] + digit + case.sha256[position + 1 :]
        return [(licence, params, moment)], {"bad signature"}
    if kind == "expires later":
        params["expires"] = str(expires + data.draw(st.integers(1, 10**6)))
        return [(licence, params, moment)], {"bad signature"}
    if kind == "expires earlier":
        params["expires"] = str(expires - data.draw(st.integers(1, expires - 1)))
        return [(licence, params, moment)], {"bad signature"}
    if kind == "kid of the other existing key":
        params["kid"] = {"k1": "k2", "k2": "k1"}[params["kid"]]
        return [(licence, params, moment)], {"bad signature"}
    if kind == "unknown kid":
        params["kid"] = data.draw(st.from_regex(KID, fullmatch=True).filter(lambda k: k not in AFTER.key_ids))
        return [(licence, params, moment)], {"unknown key id"}
    if kind == "malformed kid":
        params["kid"] = data.draw(
            st.one_of(
                st.sampled_from(["", "k1\n", " k2", "K2 ", "k1/../k2", "k" * 33, "k2=", "k１"]),
                st.text(max_size=40).filter(lambda k: not re.fullmatch(KID, k)),
            )
        )
        return [(licence, params, moment)], {"unknown key id"}
    if kind == "signature bit flip":
        flipped = bytearray(raw_sig)
        bit = data.draw(st.integers(0, 255))
        flipped[bit // 8] ^= 1 << (bit % 8)
        params["sig"] = base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
        return [(licence, params, moment)], {"bad signature"}
    if kind == "signature truncated":
        keep = data.draw(st.integers(0, 42))
        params["sig"] = data.draw(st.sampled_from([params["sig"][:keep], params["sig"][43 - keep :]]))
        return [(licence, params, moment)], {"malformed signature"}
    if kind == "signature extended":
        extra = data.draw(st.text(alphabet=ALPHABET + "=", min_size=1, max_size=8))
        params["sig"] = data.draw(st.sampled_from([params["sig"] + extra, extra + params["sig"]]))
        return [(licence, params, moment)], {"malformed signature"}
    if kind == "signature re-encoded":
        last = ALPHABET.index(params["sig"][-1])
        assert last % 4 == 0  # 43 characters carry 258 bits: the last two must be zero
        variants = [
            params["sig"] + "=",
            base64.b64encode(raw_sig).decode(),
            raw_sig.hex(),
            base64.b32encode(raw_sig).decode(),
            params["sig"][:-1] + ALPHABET[last | data.draw(st.integers(1, 3))],  # same bytes, other spelling
            " " + params["sig"],
            params["sig"] + "\n",
            params["sig"][:20] + "%2D" + params["sig"][21:],
        ]
        return [(licence, {**params, "sig": sig}, moment) for sig in variants], {"malformed signature"}
    if kind == "same kid, another secret":
        impostor = IMPOSTORS[case.signer.current_key_id]
        params = dict(impostor.sign(case.licence, case.user, case.sha256, case.signed_at, case.ttl).params)
        assert params["kid"] == case.link.params["kid"]
        return [(licence, params, moment)], {"bad signature"}
    if kind == "parameter dropped":
        for name in data.draw(st.sets(st.sampled_from(sorted(LINK_PARAMETERS)), min_size=1)):
            del params[name]
        return [(licence, params, moment)], {"missing or extra parameters"}
    if kind == "parameter added":
        name = data.draw(
            st.one_of(
                st.sampled_from(["licence", "sig2", "exp", "download", "", "user "]),
                st.text(max_size=12).filter(lambda n: n not in LINK_PARAMETERS),
            )
        )
        params[name] = data.draw(st.sampled_from(["", "1", str(case.licence), params["sig"]]))
        return [(licence, params, moment)], {"missing or extra parameters"}
    if kind == "parameter renamed":
        name = data.draw(st.sampled_from(sorted(LINK_PARAMETERS)))
        params[data.draw(st.sampled_from([name.upper(), name + " ", name.capitalize(), name + "[]"]))] = params.pop(
            name
        )
        return [(licence, params, moment)], {"missing or extra parameters"}
    if kind == "user spelled differently":
        text = str(case.user)
        variants = [
            "{" + text + "}",
            "urn:uuid:" + text,
            case.user.hex,
            text + " ",
            text[:-1],
            "",
            "not-a-uuid",
            text.upper() if text.upper() != text else text + "0",
        ]
        return [(licence, {**params, "user": user}, moment) for user in variants], {"malformed user"}
    if kind == "sha256 spelled differently":
        variants = [
            case.sha256.upper() if case.sha256.upper() != case.sha256 else "A" + case.sha256[1:],
            case.sha256[:-1],
            case.sha256 + "0",
            "g" + case.sha256[1:],
            "0x" + case.sha256[2:],
            base64.b64encode(bytes.fromhex(case.sha256)).decode(),
            "",
        ]
        return [(licence, {**params, "sha256": sha}, moment) for sha in variants], {"malformed sha256"}
    if kind == "expires spelled differently":
        text = params["expires"]
        arabic = text.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        variants = ["0" + text, "+" + text, "-" + text, text + ".0", " " + text, text + "\n", arabic]
        variants += [f"{expires:e}", hex(expires), "1_" + text, "0", "", "9" * 13]
        return [(licence, {**params, "expires": spelling}, moment) for spelling in variants], {"malformed expiry"}
    if kind == "expiry too far ahead (leaked key)":
        # Made with our own key (as a thief holding it could), for longer than we ever sign for.
        shift = timedelta(seconds=data.draw(st.integers(CLOCK_SKEW_SECONDS + 1, 10**7)))
        forged = case.signer.sign(case.licence, case.user, case.sha256, case.signed_at + shift, MAX_TTL_SECONDS)
        return [(licence, dict(forged.params), moment)], {"expiry too far ahead"}
    assert kind == "not a single text value"
    name = data.draw(st.sampled_from(sorted(LINK_PARAMETERS)))
    values: list[object] = [[params[name]], [params[name], params[name]], None, 1, b"x"]
    not_text = "a parameter is not a single text value"
    return [(licence, {**params, name: value}, moment) for value in values], {not_text}


# 24 kinds x 90 examples = 2,160 drawn mutations, each one or several mutated links. Parametrized rather
# than drawn: hypothesis favours the first entries of a `sampled_from`, which would starve the last kinds.
@pytest.mark.parametrize("kind", MUTATIONS)
@settings(max_examples=EXAMPLES_PER_MUTATION, deadline=None)
@given(case=cases(), data=st.data())
def test_every_mutated_link_is_refused_with_one_generic_message(case: Case, kind: str, data: st.DataObject) -> None:
    mutants, reasons = mutate(case, kind, data)
    for licence, params, moment in mutants:
        assert (licence, params, moment) != (case.licence, case.link.params, case.signed_at)
        with pytest.raises(InvalidLink) as refused:
            AFTER.verify(licence, cast(dict[str, str], params), moment)
        assert refused.value.reason in reasons, (kind, params, refused.value.reason)
        assert str(refused.value) == GENERIC
        assert isinstance(refused.value, ValueError)
    # The unmutated link was valid at the moment it was signed.
    assert AFTER.verify(case.licence, case.link.params, case.signed_at).user_id == case.user


def test_enough_mutations_are_drawn() -> None:
    assert len(MUTATIONS) * EXAMPLES_PER_MUTATION >= 2000


def test_a_link_whose_key_is_no_longer_held_is_refused() -> None:
    licence = uuid.uuid4()
    link = BEFORE.sign(licence, uuid.uuid4(), "f" * 64, datetime.now(UTC), 60)
    without_k1 = DownloadKeyring({"k2": NEW_SECRET}, "k2")
    with pytest.raises(InvalidLink) as refused:
        without_k1.verify(licence, link.params, datetime.now(UTC))
    assert refused.value.reason == "unknown key id"


# --- signing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [MAX_TTL_SECONDS + 1, 3600, 0, -1])
def test_a_lifetime_outside_1_to_900_seconds_is_refused_at_signing(ttl: int) -> None:
    with pytest.raises(ValueError, match="1 to 900"):
        AFTER.sign(uuid.uuid4(), uuid.uuid4(), "a" * 64, datetime.now(UTC), ttl)


@pytest.mark.parametrize("sha256", ["A" * 64, "a" * 63, "a" * 65, "g" * 64, ""])
def test_a_malformed_digest_is_refused_at_signing(sha256: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        AFTER.sign(uuid.uuid4(), uuid.uuid4(), sha256, datetime.now(UTC), 60)


def test_a_time_without_a_zone_is_refused() -> None:
    naive = datetime(2030, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        AFTER.sign(uuid.uuid4(), uuid.uuid4(), "a" * 64, naive, 60)
    link = AFTER.sign(uuid.uuid4(), uuid.uuid4(), "a" * 64, naive.replace(tzinfo=UTC), 60)
    with pytest.raises(ValueError, match="timezone-aware"):
        AFTER.verify(uuid.uuid4(), link.params, naive)


# --- the keyring ------------------------------------------------------------------------------------


def test_keys_are_loaded_from_the_directory_and_rotation_keeps_old_links_until_their_file_goes(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    licence, user, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    first = DownloadKeyring.load(keys, "k1")
    assert first.current_key_id == "k1"
    assert first.key_ids == {"k1"}
    key_file = keys / "download-k1.key"
    assert len(key_file.read_bytes()) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    old_link = first.sign(licence, user, "b" * 64, now, 300)
    # Loading again reads the same secret: links survive a restart.
    assert DownloadKeyring.load(keys, "k1").verify(licence, old_link.params, now).key_id == "k1"

    rotated = DownloadKeyring.load(keys, "k2")
    assert rotated.current_key_id == "k2"
    assert rotated.key_ids == {"k1", "k2"}
    assert (keys / "download-k2.key").read_bytes() != key_file.read_bytes()
    assert rotated.verify(licence, old_link.params, now).key_id == "k1"
    new_link = rotated.sign(licence, user, "b" * 64, now, 300)
    assert new_link.params["kid"] == "k2"
    assert rotated.verify(licence, new_link.params, now).key_id == "k2"

    # Files that are not download keys are left alone; a name that is not a valid kid is skipped.
    (keys / "hmac.key").write_bytes(os.urandom(32))
    (keys / "download-bad.name.key").write_bytes(os.urandom(32))
    (keys / ".download-k3.key.123.tmp").write_bytes(os.urandom(32))
    assert DownloadKeyring.load(keys, "k2").key_ids == {"k1", "k2"}

    key_file.unlink()  # retiring the old key kills its links
    after_removal = DownloadKeyring.load(keys, "k2")
    assert after_removal.key_ids == {"k2"}
    with pytest.raises(InvalidLink) as refused:
        after_removal.verify(licence, old_link.params, now)
    assert refused.value.reason == "unknown key id"
    assert after_removal.verify(licence, new_link.params, now).key_id == "k2"


def test_a_truncated_key_file_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "download-k1.key").write_bytes(b"short")
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        DownloadKeyring.load(tmp_path, "k2")


@pytest.mark.parametrize("kid", ["", "k" * 33, "../k1", "k/1", "k 1", "k1\n", "k.1", "kid=1", "ké"])
def test_a_malformed_key_id_is_refused(tmp_path: Path, kid: str) -> None:
    with pytest.raises(ValueError, match="download key id"):
        DownloadKeyring.load(tmp_path, kid)
    with pytest.raises(ValueError, match="download key id"):
        DownloadKeyring({kid: NEW_SECRET}, kid)
    with pytest.raises(ValueError, match="download key id"):
        DownloadKeyring({kid: NEW_SECRET, "k2": NEW_SECRET}, "k2")
    assert list(tmp_path.iterdir()) == []  # nothing written for a refused kid


def test_the_longest_valid_key_id_is_accepted(tmp_path: Path) -> None:
    kid = "A-z_9" * 6 + "Zz"
    assert len(kid) == 32
    keyring = DownloadKeyring.load(tmp_path, kid)
    link = keyring.sign(uuid.uuid4(), uuid.uuid4(), "c" * 64, datetime.now(UTC), 1)
    assert link.params["kid"] == kid

"""Citizen identity assertions: verified before parsed, audience and age checked,
each accepted once (replay cache, journaled across restarts)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from keys import KeyPair, sign, subject_key
from node.core._errors import NodeError, UnauthenticatedError
from node.demo._testbed import make_id_number
from node.pb.v1 import node_pb2
from node.rpc._identity import IDENTITY_TYPE, DevIdentityProvider, IdentityVerifier
from node.rpc._replay import ReplayCache

SECRET = b"s" * 32
ID = make_id_number(7)
NOW = 1_800_000_000


@pytest.fixture
def idp() -> DevIdentityProvider:
    return DevIdentityProvider(KeyPair.generate())


def _verifier(idp: DevIdentityProvider, replay: ReplayCache | None = None) -> IdentityVerifier:
    return IdentityVerifier("heihe", (idp.public_key,), SECRET, max_age_seconds=600, replay=replay)


def _with_nonce(idp: DevIdentityProvider, nonce: bytes) -> bytes:
    msg = node_pb2.IdentityAssertion(
        subject_id=ID, issuer="dev-idp", audience="heihe", issued_at=NOW, expires_at=NOW + 300,
        nonce=nonce,
    )  # fmt: skip
    return sign(IDENTITY_TYPE, msg.SerializeToString(), idp.key).to_bytes()


def test_valid_assertion_gives_subject_key(idp: DevIdentityProvider) -> None:
    who = _verifier(idp).verify(idp.assertion(ID, "heihe", NOW), NOW + 5)
    assert who.subject_key == subject_key(SECRET, ID)
    assert ID not in repr(who)


@pytest.mark.parametrize(
    ("make", "now", "code"),
    [
        pytest.param(lambda i: None, NOW, "IDENTITY_MISSING", id="missing"),
        pytest.param(lambda i: b"junk", NOW, "IDENTITY_INVALID", id="junk"),
        pytest.param(
            lambda i: DevIdentityProvider(KeyPair.generate()).assertion(ID, "heihe", NOW),
            NOW,
            "IDENTITY_INVALID",
            id="unknown-provider",
        ),
        pytest.param(
            lambda i: i.assertion(ID, "hainan", NOW), NOW, "IDENTITY_WRONG_AUDIENCE", id="audience"
        ),
        pytest.param(
            lambda i: i.assertion(ID, "heihe", NOW), NOW + 301, "IDENTITY_EXPIRED", id="expired"
        ),
        pytest.param(
            lambda i: i.assertion(ID, "heihe", NOW + 3600), NOW, "IDENTITY_EXPIRED", id="future"
        ),
        pytest.param(
            lambda i: i.assertion(ID[:-1] + ("0" if ID[-1] != "0" else "1"), "heihe", NOW),
            NOW,
            "IDENTITY_INVALID",
            id="bad-check-digit",
        ),
        pytest.param(lambda i: _with_nonce(i, b""), NOW, "IDENTITY_INVALID", id="no-nonce"),
        pytest.param(
            lambda i: _with_nonce(i, b"n" * 15), NOW, "IDENTITY_INVALID", id="short-nonce"
        ),
        pytest.param(lambda i: _with_nonce(i, b"n" * 65), NOW, "IDENTITY_INVALID", id="long-nonce"),
    ],
)
def test_bad_assertions_are_refused(idp: DevIdentityProvider, make, now: int, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnauthenticatedError) as info:
        _verifier(idp).verify(make(idp), now)
    assert info.value.code == code
    assert ID not in str(info.value)


@pytest.mark.parametrize(
    ("journaled", "restart"),
    [
        pytest.param(False, False, id="same-process"),
        pytest.param(True, False, id="journaled"),
        pytest.param(True, True, id="after-restart"),
    ],
)
def test_an_assertion_is_accepted_once(
    idp: DevIdentityProvider, tmp_path: Path, journaled: bool, restart: bool
) -> None:
    """REQ: H5 N4 — issue 14 item 10: the same assertion twice is refused the second
    time (UNAUTHENTICATED IDENTITY_REPLAYED), also by a node restarted in between
    (the journal is read back); a fresh assertion of the same citizen is accepted."""
    journal = tmp_path / "node.db.identity-replay" if journaled else None
    verifier = _verifier(idp, ReplayCache(1_000, journal))
    blob = idp.assertion(ID, "heihe", NOW)
    verifier.verify(blob, NOW + 1)
    if restart:
        verifier.close()
        verifier = _verifier(idp, ReplayCache(1_000, journal))
    with pytest.raises(UnauthenticatedError) as info:
        verifier.verify(blob, NOW + 2)
    assert (info.value.status, info.value.code) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "IDENTITY_REPLAYED",
    )
    assert ID not in str(info.value)
    verifier.verify(idp.assertion(ID, "heihe", NOW + 2), NOW + 3)  # a fresh one is fine
    if journal is not None:
        assert journal.stat().st_mode & 0o777 == 0o600  # owner-only, like every node file


def test_a_full_cache_refuses_new_assertions_and_keeps_old_ones(
    idp: DevIdentityProvider, tmp_path: Path
) -> None:
    """Issue 14 item 10: memory is bounded; when full, a NEW assertion is refused
    (RESOURCE_EXHAUSTED IDENTITY_REPLAY_CACHE_FULL) and no unexpired entry is evicted
    (the old one is still a replay); once entries expire there is room again."""
    verifier = _verifier(idp, ReplayCache(2, tmp_path / "j"))
    first = idp.assertion(ID, "heihe", NOW)
    verifier.verify(first, NOW)
    verifier.verify(idp.assertion(ID, "heihe", NOW), NOW)
    with pytest.raises(NodeError) as info:
        verifier.verify(idp.assertion(ID, "heihe", NOW), NOW)
    assert (info.value.status, info.value.code) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "IDENTITY_REPLAY_CACHE_FULL",
    )
    with pytest.raises(UnauthenticatedError) as again:
        verifier.verify(first, NOW + 1)
    assert again.value.code == "IDENTITY_REPLAYED"
    # the two entries lapse with their assertions (300 s lifetime): room again
    verifier.verify(idp.assertion(ID, "heihe", NOW + 300), NOW + 300)


def test_entries_last_as_long_as_the_assertion_could_be_accepted(
    idp: DevIdentityProvider, tmp_path: Path
) -> None:
    """Issue 14 item 10: an entry covers the whole lifetime — a replay at the last
    accepted second is refused as a replay, a second later as expired."""
    verifier = _verifier(idp, ReplayCache(1_000, tmp_path / "j"))
    blob = idp.assertion(ID, "heihe", NOW, ttl=300)
    verifier.verify(blob, NOW)
    with pytest.raises(UnauthenticatedError) as info:
        verifier.verify(blob, NOW + 299)
    assert info.value.code == "IDENTITY_REPLAYED"
    with pytest.raises(UnauthenticatedError) as late:
        verifier.verify(blob, NOW + 300)
    assert late.value.code == "IDENTITY_EXPIRED"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"not a journal"), id="foreign-file"),
        pytest.param(lambda p: (p.unlink(), p.mkdir()), id="unreadable"),
    ],
)
def test_an_unusable_journal_fails_closed(
    idp: DevIdentityProvider, tmp_path: Path, damage: object
) -> None:
    """Issue 14 item 10: a journal that cannot be read is no reason to forget what
    was accepted: every sign-in is refused (UNAVAILABLE IDENTITY_REPLAY_UNAVAILABLE)."""
    journal = tmp_path / "node.db.identity-replay"
    _verifier(idp, ReplayCache(1_000, journal)).verify(idp.assertion(ID, "heihe", NOW), NOW)
    damage(journal)  # type: ignore[operator]
    with pytest.raises(NodeError) as info:
        _verifier(idp, ReplayCache(1_000, journal)).verify(idp.assertion(ID, "heihe", NOW), NOW)
    assert (info.value.status, info.value.code) == (
        grpc.StatusCode.UNAVAILABLE,
        "IDENTITY_REPLAY_UNAVAILABLE",
    )


def test_the_journal_stays_bounded(idp: DevIdentityProvider, tmp_path: Path) -> None:
    """Issue 14 item 10: expired entries leave the journal when it is rewritten, so it
    holds a bounded number of records however many assertions pass."""
    journal = tmp_path / "j"
    cache = ReplayCache(2_000, journal)
    for i in range(12_000):  # 100 keys a second, each expiring 10 s after it is taken
        cache.admit(os.urandom(16), NOW + i // 100 + 10, NOW + i // 100)
    assert len(cache) <= 1_000
    assert journal.stat().st_size <= 8 + 24 * (2 * 1_000 + 4_096 + 1)

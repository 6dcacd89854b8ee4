"""Which status list decides (issue 14 item 1): ``keys.select_status_list`` and its use
by ``verify_attestation`` and ``verify_batch``.

REQ: H12 (a withdrawn consent stops the attestation), H17 (security: fail closed).
The rule is docs/SPEC.md section 8.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import permutations
from typing import Any

import pytest

from keys import (
    Envelope,
    EnvelopeSignature,
    Status,
    StatusList,
    StatusPool,
    Trust,
    VerificationError,
    issue_attestation,
    issue_batch,
    load_trust,
    select_status_list,
    verify_attestation,
    verify_batch,
    verify_status_list,
)

from .conftest import AUD, DAY, T0, World

LIST = "heihe-2026-11"
INDEX = 3  # the index of World.attestation()


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> Trust:
    return load_trust(world.bundle_v2, world.hub_root.public_key, T0, min_version=2)


def _list(
    w: World,
    state: Status,
    issued: int,
    expires: int,
    *,
    issuer: str = "heihe",
    list_id: str = LIST,
    key: Any = None,
) -> Envelope:
    sl = StatusList(issuer, list_id)
    sl.set(INDEX, state)
    return sl.sign(key or w.heihe_key, issued, expires)


def _broken_signature(env: Envelope) -> Envelope:
    s = env.signatures[0]
    return Envelope(
        env.payload_type,
        env.payload,
        (EnvelopeSignature(s.key_id, bytes([s.sig[0] ^ 1]) + s.sig[1:]),),
    )


# name -> builder of one candidate
LISTS: dict[str, Callable[[World], Any]] = {
    "stale_valid": lambda w: _list(w, Status.VALID, T0 - 3600, T0 + DAY),
    "fresh_revoked": lambda w: _list(w, Status.REVOKED, T0 - 60, T0 + DAY),
    "fresh_valid": lambda w: _list(w, Status.VALID, T0 - 60, T0 + DAY),
    "old_suspended": lambda w: _list(w, Status.SUSPENDED, T0 - 7200, T0 + DAY),
    "expired_valid": lambda w: _list(w, Status.VALID, T0 - 2 * DAY, T0 - DAY),
    "bad_signature_valid": lambda w: _broken_signature(_list(w, Status.VALID, T0 - 30, T0 + DAY)),
    "future_valid": lambda w: _list(w, Status.VALID, T0 + 3600, T0 + 2 * DAY),
    "within_skew_revoked": lambda w: _list(w, Status.REVOKED, T0 + 200, T0 + DAY),
    "other_list_revoked": lambda w: _list(w, Status.REVOKED, T0, T0 + DAY, list_id="other"),
    "hainan_signed": lambda w: _list(w, Status.VALID, T0, T0 + DAY, key=w.hainan_key),
    "garbage": lambda w: b"\xff\x00 not an envelope",
    "same_time_valid": lambda w: _list(w, Status.VALID, T0 - 60, T0 + DAY),
    "same_time_revoked_later_expiry": lambda w: _list(w, Status.REVOKED, T0 - 60, T0 + 2 * DAY),
    "verified_object_revoked": lambda w: verify_status_list(
        _list(w, Status.REVOKED, T0 - 10, T0 + DAY),
        load_trust(w.trust_v2, w.hub_root.public_key, T0),
        T0,
    ),
}

# (id, candidates in order, verdict (a state or None), warnings as (index, code))
RULE = [
    ("stale-then-fresh-revoked", ["stale_valid", "fresh_revoked"], Status.REVOKED, []),
    ("newer-valid-lifts-older-suspension", ["old_suspended", "fresh_valid"], Status.VALID, []),
    ("expired-skipped", ["expired_valid", "fresh_revoked"], Status.REVOKED, [(0, "EXPIRED")]),
    ("bad-signature-skipped", ["bad_signature_valid", "fresh_valid"], Status.VALID,
     [(0, "BAD_SIGNATURE")]),
    ("future-dated-skipped", ["fresh_revoked", "future_valid"], Status.REVOKED,
     [(1, "NOT_YET_VALID")]),
    ("within-clock-skew-counts", ["fresh_valid", "within_skew_revoked"], Status.REVOKED, []),
    ("other-list-ignored-silently", ["other_list_revoked", "stale_valid"], Status.VALID, []),
    ("signed-by-another-region", ["hainan_signed", "stale_valid"], Status.VALID,
     [(0, "ISSUER_MISMATCH")]),
    ("garbage-skipped", ["garbage", "stale_valid"], Status.VALID, [(0, "MALFORMED")]),
    ("verified-object-counts", ["stale_valid", "verified_object_revoked"], Status.REVOKED, []),
    ("none-usable", ["expired_valid", "bad_signature_valid", "future_valid"], None,
     [(0, "EXPIRED"), (1, "BAD_SIGNATURE"), (2, "NOT_YET_VALID")]),
    ("none-for-this-list", ["other_list_revoked"], None, []),
    ("two-different-lists-at-the-same-second", ["same_time_valid", "same_time_revoked_later_expiry"],
     None, [(1, "STATUS_UNAVAILABLE")]),
    ("same-list-twice", ["fresh_valid", "same_time_valid"], Status.VALID, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("names", "verdict", "warnings"), [r[1:] for r in RULE], ids=[r[0] for r in RULE]
)
def test_select_status_list_rule(
    world: World,
    trust: Trust,
    names: list[str],
    verdict: Status | None,
    warnings: list[tuple[int, str]],
) -> None:
    """issue 14 item 1: the newest usable list of the issuer and list id decides; lists
    that fail to verify, expired or future-dated ones are skipped with a warning."""
    chosen, got = select_status_list([LISTS[n](world) for n in names], trust, "heihe", LIST, T0)
    assert [(w.index, w.code) for w in got] == warnings
    if verdict is None:
        assert chosen is None
    else:
        assert chosen is not None and chosen.get(INDEX) is verdict


@pytest.mark.parametrize(
    "names",
    [
        ["stale_valid", "fresh_revoked", "old_suspended"],
        ["expired_valid", "stale_valid", "fresh_revoked"],
    ],
    ids=["three-lists", "with-an-expired-one"],
)
def test_order_of_candidates_never_matters(world: World, trust: Trust, names: list[str]) -> None:
    """issue 14 item 1: every order of the same candidates gives the same verdict."""
    verdicts = set()
    for order in permutations(names):
        chosen, _ = select_status_list([LISTS[n](world) for n in order], trust, "heihe", LIST, T0)
        assert chosen is not None
        verdicts.add((chosen.issued_at, chosen.get(INDEX)))
    assert verdicts == {(T0 - 60, Status.REVOKED)}


# (id, candidates, expected verify_attestation outcome, warning codes)
VERIFY = [
    ("stale-bundle-list-fresh-revoked", ["stale_valid", "fresh_revoked"], "STATUS_REVOKED", []),
    ("fresh-revoked-then-stale", ["fresh_revoked", "stale_valid"], "STATUS_REVOKED", []),
    ("expired-then-valid", ["expired_valid", "fresh_valid"], "valid", ["EXPIRED"]),
    ("bad-signature-then-valid", ["bad_signature_valid", "fresh_valid"], "valid", ["BAD_SIGNATURE"]),
    ("none-usable", ["expired_valid", "bad_signature_valid"], "STATUS_UNAVAILABLE",
     ["EXPIRED", "BAD_SIGNATURE"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("names", "outcome", "warnings"), [r[1:] for r in VERIFY], ids=[r[0] for r in VERIFY]
)
def test_verify_attestation_applies_the_rule(
    world: World, trust: Trust, names: list[str], outcome: str, warnings: list[str]
) -> None:
    """issue 14 item 1: the library verifier takes the lists as envelopes, bytes or
    verified lists, and reports skipped lists on the result or on the error; bulk
    verification gives the same verdicts and warnings."""
    candidates = [LISTS[n](world) for n in names]
    as_bytes = [c.to_bytes() if isinstance(c, Envelope) else c for c in candidates]
    blob = issue_attestation(world.attestation(), world.heihe_key)
    batch = issue_batch([world.attestation(attestation_id=f"b{i}") for i in range(3)],
                        world.heihe_key, "heihe", T0 - 60)  # fmt: skip
    for status in (candidates, as_bytes, StatusPool(candidates, trust)):
        results: list[Any] = []
        try:
            results.append(verify_attestation(blob, trust, T0, AUD, status=status))
        except VerificationError as exc:
            results.append(exc)
        results += verify_batch(batch.bundles(), trust, T0, AUD, status=status)
        for r in results:
            got = r.code if isinstance(r, VerificationError) else r.status
            assert got == outcome
            assert [w.code for w in r.warnings] == warnings

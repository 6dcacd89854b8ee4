"""Citizen identity assertions: verified before parsed, audience and age checked."""

from __future__ import annotations

import pytest

from keys import KeyPair, subject_key
from node._errors import UnauthenticatedError
from node._identity import DevIdentityProvider, IdentityVerifier
from node._testbed import make_id_number

SECRET = b"s" * 32
ID = make_id_number(7)
NOW = 1_800_000_000


@pytest.fixture
def idp() -> DevIdentityProvider:
    return DevIdentityProvider(KeyPair.generate())


def _verifier(idp: DevIdentityProvider) -> IdentityVerifier:
    return IdentityVerifier("heihe", (idp.public_key,), SECRET, max_age_seconds=600)


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
    ],
)
def test_bad_assertions_are_refused(idp: DevIdentityProvider, make, now: int, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnauthenticatedError) as info:
        _verifier(idp).verify(make(idp), now)
    assert info.value.code == code
    assert ID not in str(info.value)

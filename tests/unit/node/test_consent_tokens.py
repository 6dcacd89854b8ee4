"""Consent tokens are verified, then parsed, once (node.exchange._tokens).

REQ: H5, N15 -- issue 17: the attestation request's token step in its own module:
a token verifies against any key of the node's key set valid at the grant time,
is parsed only after it verified, is remembered by its exact bytes, and the
memory is dropped when the key set changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from keys import KeyPair, KeySet, SigningKeyInfo, sign
from keys.pb.v1 import attestation_pb2
from node.core._errors import NodeError
from node.disclosure import CONSENT_TYPE
from node.exchange._tokens import ConsentTokens
from node.pb.v1 import node_pb2

GRANTED = 1_800_000_000
SIGNER = KeyPair.generate()
OTHER = KeyPair.generate()


@dataclass
class _Secrets:
    """The one attribute ConsentTokens reads of the node's secrets."""

    key_set: KeySet


def _key_set(*infos: SigningKeyInfo, version: int = 1) -> KeySet:
    return KeySet("heihe", version, GRANTED, KeyPair.generate().public_key, tuple(infos))


VALID = SigningKeyInfo(SIGNER.public_key, GRANTED - 10, GRANTED + 10)


def _token(
    key: KeyPair = SIGNER, region: str = "heihe", payload: bytes | None = None
) -> attestation_pb2.Envelope:
    grant = node_pb2.ConsentGrant(consent_id="c1", issuer_region=region, granted_at=GRANTED)
    body = grant.SerializeToString() if payload is None else payload
    return sign(CONSENT_TYPE, body, key).to_proto()


def _tokens(key_set: KeySet) -> tuple[ConsentTokens, _Secrets]:
    secrets = _Secrets(key_set)
    return ConsentTokens(secrets, "heihe"), secrets  # type: ignore[arg-type]


def test_a_genuine_token_gives_its_grant() -> None:
    tokens, _ = _tokens(_key_set(VALID))
    assert tokens.grant(_token()).consent_id == "c1"


REFUSED = [
    pytest.param(_key_set(VALID), {"key": OTHER}, "CONSENT_INVALID", id="unknown-key"),
    pytest.param(_key_set(VALID), {"region": "hainan"}, "CONSENT_INVALID", id="other-region"),
    pytest.param(_key_set(VALID), {"payload": b"\xff\xff"}, "CONSENT_INVALID", id="malformed"),
    pytest.param(
        _key_set(replace(VALID, revoked_at=GRANTED)), {}, "CONSENT_KEY_REVOKED", id="revoked"
    ),
    pytest.param(
        _key_set(replace(VALID, not_after=GRANTED - 1)), {}, "CONSENT_KEY_NOT_VALID", id="expired"
    ),
]


@pytest.mark.parametrize(("key_set", "token", "reason"), REFUSED)
def test_a_token_that_does_not_verify_is_refused(
    key_set: KeySet, token: dict[str, Any], reason: str
) -> None:
    tokens, _ = _tokens(key_set)
    with pytest.raises(NodeError) as caught:
        tokens.grant(_token(**token))
    assert caught.value.code == reason


def test_a_repeat_is_served_from_memory_until_the_key_set_changes() -> None:
    """The same bytes verify the same way; a new key set version (a revocation here)
    drops what was remembered, so the next call verifies again and refuses."""
    tokens, secrets = _tokens(_key_set(VALID))
    token = _token()
    first = tokens.grant(token)
    assert tokens.grant(token) is first  # remembered, not parsed again
    secrets.key_set = _key_set(replace(VALID, revoked_at=GRANTED - 1), version=2)
    with pytest.raises(NodeError) as caught:
        tokens.grant(token)
    assert caught.value.code == "CONSENT_KEY_REVOKED"

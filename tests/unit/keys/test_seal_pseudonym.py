"""At-rest sealing (AES-GCM with key ids) and HMAC pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys import (
    KeysError,
    Sealer,
    SealError,
    province_pseudonym,
    subject_binding,
    subject_key,
)

from .conftest import load_external

K1 = b"\x11" * 32
K2 = b"\x22" * 16
ID = "23110219900517123X"


def test_seal_roundtrip_and_rotation() -> None:
    """REQ: H17 (encryption in storage)."""
    old = Sealer({"k1": K1}, current="k1")
    blob = old.seal(b"secret", b"row-1")
    assert b"secret" not in blob
    new = Sealer({"k1": K1, "k2": K2}, current="k2")
    assert new.open(blob, b"row-1") == b"secret"
    blob2 = new.seal(b"secret", b"row-1")
    assert blob2[2:4] == b"k2"
    assert new.open(blob2, b"row-1") == b"secret"
    assert blob2 != new.seal(b"secret", b"row-1")  # fresh nonce


def _flip(blob: bytes, i: int) -> bytes:
    return blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]


OPEN_FAILURES: list[tuple[str, Any, str]] = [
    ("wrong_aad", lambda s, b: s.open(b, b"row-2"), "SEAL_FAILED"),
    ("flipped_ciphertext", lambda s, b: s.open(_flip(b, len(b) - 20), b"row-1"), "SEAL_FAILED"),
    ("flipped_tag", lambda s, b: s.open(_flip(b, len(b) - 1), b"row-1"), "SEAL_FAILED"),
    ("flipped_nonce", lambda s, b: s.open(_flip(b, 5), b"row-1"), "SEAL_FAILED"),
    ("bad_version", lambda s, b: s.open(b"\x02" + b[1:], b"row-1"), "SEAL_FAILED"),
    ("truncated", lambda s, b: s.open(b[:20], b"row-1"), "SEAL_FAILED"),
    ("empty", lambda s, b: s.open(b"", b"row-1"), "SEAL_FAILED"),
    ("unknown_key", lambda s, b: Sealer({"k2": K2}, "k2").open(b, b"row-1"), "UNKNOWN_KEY"),
    ("relabelled_key", lambda s, b: s.open(b[:2] + b"k2" + b[4:], b"row-1"), "SEAL_FAILED"),
]


@pytest.mark.parametrize(
    ("call", "code"), [(c, k) for _, c, k in OPEN_FAILURES], ids=[n for n, _, _ in OPEN_FAILURES]
)
def test_open_failures(call: Any, code: str) -> None:
    sealer = Sealer({"k1": K1, "k2": K2}, current="k1")
    blob = sealer.seal(b"secret", b"row-1")
    with pytest.raises(SealError) as err:
        call(sealer, blob)
    assert err.value.code == code


@pytest.mark.parametrize(
    ("keys", "current"),
    [({"k1": b"short"}, "k1"), ({"k1": K1}, "k9"), ({"": K1}, ""), ({"ключ": K1}, "ключ")],
    ids=["short_key", "unknown_current", "empty_id", "non_ascii_id"],
)
def test_bad_sealer_config(keys: dict[str, bytes], current: str) -> None:
    with pytest.raises(SealError):
        Sealer(keys, current)


def _aes_gcm_cases() -> list[Any]:
    data = load_external("aes_gcm_test.json")
    return [
        pytest.param(g["keySize"], t, id=f"tc{t['tcId']}")
        for g in data["testGroups"]
        if g["ivSize"] == 96 and g["tagSize"] == 128
        for t in g["tests"]
    ]


@pytest.mark.parametrize(("key_size", "case"), _aes_gcm_cases())
def test_wycheproof_aes_gcm_primitive(key_size: int, case: dict[str, Any]) -> None:
    """The AEAD the Sealer uses, on Wycheproof's 96-bit-nonce / 128-bit-tag cases."""
    aead = AESGCM(bytes.fromhex(case["key"]))
    iv, aad = bytes.fromhex(case["iv"]), bytes.fromhex(case["aad"])
    ct = bytes.fromhex(case["ct"]) + bytes.fromhex(case["tag"])
    try:
        plain = aead.decrypt(iv, ct, aad)
    except InvalidTag:
        assert case["result"] == "invalid", case["comment"]
        return
    assert case["result"] != "invalid", case["comment"]
    assert plain == bytes.fromhex(case["msg"])
    assert aead.encrypt(iv, plain, aad) == ct


def test_pseudonyms_are_hmac_of_normalised_id() -> None:
    secret = b"s" * 32
    want = hmac.new(secret, ID.encode(), hashlib.sha256).digest()
    assert subject_key(secret, ID) == want
    assert subject_key(secret, " " + ID.lower() + "\n") == want
    assert province_pseudonym(secret, ID) == want
    assert subject_binding(secret, ID) == want
    assert subject_binding(b"t" * 32, ID) != want


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: subject_key(b"short", ID), "INVALID_KEY"),
        (lambda: subject_binding(b"s" * 32, "  "), "INVALID_ID_NUMBER"),
        (lambda: province_pseudonym(b"s" * 32, 123), "INVALID_ID_NUMBER"),
    ],
    ids=["short_secret", "blank_id", "non_string_id"],
)
def test_pseudonym_errors_never_echo_id(call: Any, code: str) -> None:
    with pytest.raises(KeysError) as err:
        call()
    assert err.value.code == code
    assert ID not in str(err.value)

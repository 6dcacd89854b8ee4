"""Ed25519 conformance: RFC 8032 section 7.1, Wycheproof, weak-key refusal."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from keys import KeyPair, KeyRefusedError, check_public_key, ed25519_verify, key_id

from .conftest import load_external

# RFC 8032, section 7.1: (secret seed, public key, message, signature)
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("seed", "pk", "msg", "sig"), RFC8032, ids=["test1", "test2", "test3"])
def test_rfc8032_vectors(seed: str, pk: str, msg: str, sig: str) -> None:
    kp = KeyPair(bytes.fromhex(seed))
    assert kp.public_key.hex() == pk
    assert kp.sign(bytes.fromhex(msg)).hex() == sig
    assert ed25519_verify(kp.public_key, bytes.fromhex(msg), bytes.fromhex(sig))
    assert not ed25519_verify(kp.public_key, bytes.fromhex(msg) + b"\x00", bytes.fromhex(sig))


def _wycheproof_cases() -> list[Any]:
    data = load_external("ed25519_test.json")
    cases = [
        pytest.param(group["publicKey"]["pk"], t, id=f"tc{t['tcId']}")
        for group in data["testGroups"]
        for t in group["tests"]
    ]
    assert len(cases) == data["numberOfTests"] == 151
    return cases


@pytest.mark.parametrize(("pk", "case"), _wycheproof_cases())
def test_wycheproof_ed25519(pk: str, case: dict[str, Any]) -> None:
    """All 151 Wycheproof cases: malleable S, small-order and non-canonical points."""
    ok = ed25519_verify(bytes.fromhex(pk), bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"]))
    assert ok is (case["result"] == "valid"), case["comment"]


def test_key_id_is_first_16_bytes_of_sha256() -> None:
    pk = bytes(range(32))
    assert key_id(pk) == hashlib.sha256(pk).hexdigest()[:32]
    assert len(key_id(pk)) == 32


SMALL_ORDER = [
    ("identity", "0100000000000000000000000000000000000000000000000000000000000000"),
    ("order2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ("order4", "0000000000000000000000000000000000000000000000000000000000000000"),
    ("order8", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    ("order8b", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    ("noncanonical_p", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ("noncanonical_y", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


@pytest.mark.parametrize("hexkey", [h for _, h in SMALL_ORDER], ids=[n for n, _ in SMALL_ORDER])
def test_weak_keys_refused(hexkey: str) -> None:
    with pytest.raises(KeyRefusedError) as err:
        check_public_key(bytes.fromhex(hexkey))
    assert err.value.code == "WEAK_KEY"


def test_mixed_order_key_refused() -> None:
    """A valid key plus a small-order component is off the prime-order subgroup."""
    import nacl.bindings

    good = KeyPair(b"\x01" * 32).public_key
    torsion = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
    mixed = nacl.bindings.crypto_core_ed25519_add(good, torsion)
    assert check_public_key(good) == good
    with pytest.raises(KeyRefusedError) as err:
        check_public_key(mixed)
    assert err.value.code == "WEAK_KEY"


@pytest.mark.parametrize("bad", [b"", b"\x01" * 31, b"\x01" * 33], ids=["empty", "short", "long"])
def test_wrong_length_keys_refused(bad: bytes) -> None:
    with pytest.raises(KeyRefusedError) as err:
        check_public_key(bad)
    assert err.value.code == "INVALID_KEY"
    assert not ed25519_verify(bad, b"m", b"\x00" * 64)


def test_repr_hides_seed() -> None:
    kp = KeyPair(b"\x07" * 32)
    assert "07070707" not in repr(kp)
    assert kp.key_id in repr(kp)


def _sign_input() -> list[list[str]]:
    import gzip

    from .conftest import EXTERNAL

    text = gzip.decompress((EXTERNAL / "ed25519_sign.input.gz").read_bytes()).decode("ascii")
    return [line.split(":") for line in text.splitlines() if line]


def test_ed25519_sign_input_1024_vectors() -> None:
    """The Ed25519 authors' 1,024 cases (messages of 0-1023 bytes): exact signatures."""
    cases = _sign_input()
    assert len(cases) == 1024
    for sk, pk, msg, sigmsg, _ in cases:
        kp = KeyPair(bytes.fromhex(sk[:64]))
        assert kp.public_key.hex() == pk
        m = bytes.fromhex(msg)
        sig = kp.sign(m)
        assert sig.hex() == sigmsg[:128]
        assert ed25519_verify(kp.public_key, m, sig)

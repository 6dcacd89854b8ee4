"""Ed25519 keys (PyNaCl/libsodium) with strict verification and weak-key refusal.

Invariants:

* :func:`key_id` is the hex of the first 16 bytes of SHA-256 of the raw 32-byte
  public key (DESIGN.md, "Keys and trust").
* :func:`ed25519_verify` rejects a non-canonical ``S`` (``S >= L``), a
  small-order or non-canonically encoded ``A`` or ``R`` (libsodium's strict
  verify, plus an explicit ``S < L`` and small-order blocklist check here so the
  guarantee does not depend on the libsodium build).  It gives the expected
  result for all Wycheproof Ed25519 cases.
* :func:`check_public_key` refuses at registration any key that is not a
  canonical encoding of a point in the prime-order subgroup (this covers the
  identity, all small-order points and mixed-order points).
* Secret seeds never appear in ``repr`` or error messages.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ._errors import KeyRefusedError

__all__ = ["KeyPair", "check_public_key", "ed25519_verify", "key_id"]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
_L = 2**252 + 27742317777372353535851937790883648493  # order of the base point

# Encodings of the 8 small-order points of edwards25519 (with both sign bits for
# x == 0 where applicable), as blocklisted by libsodium.
_SMALL_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    )
)


def key_id(public_key: bytes) -> str:
    """Hex of the first 16 bytes of SHA-256 of the raw public key."""
    return hashlib.sha256(bytes(public_key)).digest()[:16].hex()


def check_public_key(public_key: bytes, *, field: str = "public_key") -> bytes:
    """Return the key if it may be registered, else raise ``WEAK_KEY``/``INVALID_KEY``."""
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != PUBLIC_KEY_BYTES:
        raise KeyRefusedError(field, "must be 32 raw bytes", code="INVALID_KEY")
    pk = bytes(public_key)
    if pk in _SMALL_ORDER or not nacl.bindings.crypto_core_ed25519_is_valid_point(pk):
        raise KeyRefusedError(
            field, "small-order, non-canonical or off-subgroup point", code="WEAK_KEY"
        )
    return pk


@lru_cache(maxsize=4096)
def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(public_key)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Strict Ed25519 verification; never raises for bad input, returns False."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    if int.from_bytes(signature[32:], "little") >= _L:
        return False
    if public_key in _SMALL_ORDER or signature[:32] in _SMALL_ORDER:
        return False
    try:
        _verify_key(bytes(public_key)).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


class KeyPair:
    """An Ed25519 key pair from a 32-byte seed; ``sign`` returns 64-byte signatures.

    ``sign`` calls libsodium's ``crypto_sign`` with the expanded secret key kept
    from construction (the same deterministic signature as
    ``nacl.signing.SigningKey.sign``, without building a ``SignedMessage``).
    """

    __slots__ = ("_secret", "_signing", "key_id", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
            raise KeyRefusedError("seed", "must be 32 bytes", code="INVALID_KEY")
        self._signing = nacl.signing.SigningKey(bytes(seed))
        self.public_key: bytes = bytes(self._signing.verify_key)
        self.key_id: str = key_id(self.public_key)
        self._secret: bytes = nacl.bindings.crypto_sign_seed_keypair(bytes(seed))[1]

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(os.urandom(SEED_BYTES))

    @property
    def seed(self) -> bytes:
        """The secret seed (handle with care: never log it)."""
        return bytes(self._signing)

    def sign(self, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(message, self._secret)[:SIGNATURE_BYTES]

    def __repr__(self) -> str:
        return f"KeyPair(key_id={self.key_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyPair) and other.public_key == self.public_key

    def __hash__(self) -> int:
        return hash(self.public_key)

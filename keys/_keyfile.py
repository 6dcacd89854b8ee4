"""Key file encoding: an Ed25519 seed as JSON text, optionally passphrase-encrypted.

Format (UTF-8 JSON)::

    {"kind": "huxin-ed25519-key", "key_id": "...", "public_key": "<hex>",
     "encryption": "none", "seed": "<hex>"}
    {"kind": "huxin-ed25519-key", "key_id": "...", "public_key": "<hex>",
     "encryption": "argon2id-xsalsa20poly1305", "salt": "<hex>",
     "opslimit": N, "memlimit": N, "box": "<hex>"}

Invariants: pure (bytes in, bytes out; the CLI writes the file with mode 0600);
the encrypted form uses libsodium's Argon2id to derive a secretbox key; the
public key and key id are stored in clear and checked against the decrypted
seed; a wrong passphrase raises ``BAD_PASSPHRASE`` and nothing else leaks.
"""

from __future__ import annotations

import json
import os

import nacl.exceptions
import nacl.pwhash
import nacl.secret

from ._ed25519 import KeyPair
from ._errors import KeyRefusedError

__all__ = ["decode_private_key", "encode_private_key", "is_encrypted_key"]

_KIND = "huxin-ed25519-key"
_ENC = "argon2id-xsalsa20poly1305"


def encode_private_key(
    key: KeyPair,
    passphrase: bytes | None = None,
    *,
    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
) -> bytes:
    """Serialise a key pair; with ``passphrase`` the seed is encrypted."""
    doc: dict[str, object] = {
        "kind": _KIND,
        "key_id": key.key_id,
        "public_key": key.public_key.hex(),
    }
    if passphrase:
        salt = os.urandom(nacl.pwhash.argon2id.SALTBYTES)
        box_key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
        )
        box = nacl.secret.SecretBox(box_key).encrypt(key.seed)
        doc.update(
            encryption=_ENC, salt=salt.hex(), opslimit=opslimit, memlimit=memlimit, box=box.hex()
        )
    else:
        doc.update(encryption="none", seed=key.seed.hex())
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def is_encrypted_key(data: bytes) -> bool:
    try:
        return bool(json.loads(data).get("encryption") == _ENC)
    except (ValueError, AttributeError):
        return False


def decode_private_key(data: bytes, passphrase: bytes | None = None) -> KeyPair:
    """Load a key pair from :func:`encode_private_key` output."""
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
        if doc.get("kind") != _KIND:
            raise ValueError
        if doc["encryption"] == "none":
            seed = bytes.fromhex(doc["seed"])
        elif doc["encryption"] == _ENC:
            if not passphrase:
                raise KeyRefusedError("passphrase", "key is encrypted", code="BAD_PASSPHRASE")
            box_key = nacl.pwhash.argon2id.kdf(
                nacl.secret.SecretBox.KEY_SIZE,
                passphrase,
                bytes.fromhex(doc["salt"]),
                opslimit=int(doc["opslimit"]),
                memlimit=int(doc["memlimit"]),
            )
            try:
                seed = nacl.secret.SecretBox(box_key).decrypt(bytes.fromhex(doc["box"]))
            except nacl.exceptions.CryptoError:
                raise KeyRefusedError(
                    "passphrase", "wrong passphrase or damaged file", code="BAD_PASSPHRASE"
                ) from None
        else:
            raise ValueError
        key = KeyPair(seed)
    except KeyRefusedError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise KeyRefusedError("key_file", "not a huxin key file", code="INVALID_KEY") from None
    if key.public_key.hex() != doc.get("public_key") or key.key_id != doc.get("key_id"):
        raise KeyRefusedError("key_file", "public key does not match the seed", code="INVALID_KEY")
    return key

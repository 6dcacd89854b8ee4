"""Load and write a node's key material (files named by the config).

Invariants: Ed25519 keys are key files in ``keys``' format
(:func:`keys.encode_private_key`); the storage secret and seal key are one hex
string each; every secret file is written with mode 0600; a file that cannot
be used is refused naming the file (never its content).  The key set is
verified under the root key and must certify the configured signing key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keys import Envelope as KeysEnvelope
from keys import (
    KeyPair,
    KeysError,
    KeySet,
    Sealer,
    decode_private_key,
    verify_key_set,
)
from node.core._config import ConfigError, NodeConfig

__all__ = ["NodeSecrets", "load_secrets", "read_hex", "write_hex", "write_private"]


@dataclass(frozen=True, slots=True)
class NodeSecrets:
    root: KeyPair
    signing: KeyPair
    key_set: KeySet
    key_set_envelope: KeysEnvelope
    storage_secret: bytes
    sealer: Sealer
    tls_cert: bytes
    tls_key: bytes
    tls_ca: bytes

    def signing_problem_at(self, t: int) -> str | None:
        """Why the signing key may not sign at ``t`` per the key set (KEY_NOT_VALID,
        KEY_REVOKED), or None."""
        info = self.key_set.find(self.signing.key_id)
        return "KEY_NOT_VALID" if info is None else info.problem_at(t)


def read_hex(path: Path, name: str, length: int) -> bytes:
    try:
        value = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise ConfigError(name, f"file {str(path)!r} does not exist") from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(name, f"file {str(path)!r} is not hex") from None
    if len(value) != length:
        raise ConfigError(name, f"file {str(path)!r} must hold {length} bytes")
    return value


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(name, f"file {str(path)!r} does not exist") from None


def _key(path: Path, name: str, passphrase: bytes | None) -> KeyPair:
    try:
        return decode_private_key(_read(path, name), passphrase)
    except KeysError as exc:
        raise ConfigError(name, f"file {str(path)!r}: {exc.code}") from None


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_hex(path: Path, value: bytes) -> None:
    write_private(path, value.hex().encode("ascii") + b"\n")


def load_secrets(config: NodeConfig, passphrase: bytes | None = None) -> NodeSecrets:
    k = config.keys
    root = _key(k.root, "keys.root", passphrase)
    signing = _key(k.signing, "keys.signing", passphrase)
    ks_bytes = _read(k.key_set, "keys.key_set")
    try:
        key_set = verify_key_set(ks_bytes, root.public_key, config.region)
    except KeysError as exc:
        raise ConfigError("keys.key_set", f"does not verify ({exc.code})") from None
    if key_set.find(signing.key_id) is None:
        raise ConfigError("keys.key_set", "does not certify the configured signing key")
    seal_key = read_hex(k.seal, "keys.seal", 32)
    return NodeSecrets(
        root=root,
        signing=signing,
        key_set=key_set,
        key_set_envelope=KeysEnvelope.from_bytes(ks_bytes),
        storage_secret=read_hex(k.storage_secret, "keys.storage_secret", 32),
        sealer=Sealer({"seal-1": seal_key}, "seal-1"),
        tls_cert=_read(config.tls.cert, "tls.cert"),
        tls_key=_read(config.tls.key, "tls.key"),
        tls_ca=_read(config.tls.ca, "tls.ca"),
    )

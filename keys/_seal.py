"""AES-GCM at-rest encryption with key ids (DESIGN.md: raw values kept for a
citizen's own report are encrypted).

Blob layout (self-describing, version 1)::

    0x01 | len(key_id) (1 byte) | key_id (ASCII) | nonce (12 bytes) | ciphertext || tag (16 bytes)

Invariants: a fresh random 96-bit nonce per seal; the caller's ``aad`` (e.g. the
table and row key) is authenticated together with the header, so a blob moved to
another row or relabelled with another key id fails to open; every failure
raises :class:`SealError` without saying which byte was wrong.  Old keys stay in
the key map so blobs sealed before a rotation still open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import SealError

__all__ = ["Sealer"]

_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16


class Sealer:
    """Seal and open byte strings with AES-GCM under named keys."""

    __slots__ = ("_aeads", "_current")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        aeads: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            if not key_id or len(key_id.encode("ascii", "replace")) > 255 or not key_id.isascii():
                raise SealError("keys", "key ids must be 1-255 ASCII characters")
            if len(key) not in (16, 24, 32):
                raise SealError(f"keys[{key_id}]", "AES key must be 16, 24 or 32 bytes")
            aeads[key_id] = AESGCM(bytes(key))
        if current not in aeads:
            raise SealError("current", "is not one of the configured key ids")
        self._aeads = aeads
        self._current = current

    @property
    def current(self) -> str:
        """Key id used for new seals."""
        return self._current

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt ``plaintext`` under the current key; returns a self-describing blob."""
        kid = self._current.encode("ascii")
        header = bytes([_VERSION, len(kid)]) + kid
        nonce = os.urandom(NONCE_BYTES)
        ct = self._aeads[self._current].encrypt(nonce, bytes(plaintext), header + bytes(aad))
        return header + nonce + ct

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Decrypt a blob from :meth:`seal`; raises :class:`SealError` on any failure."""
        blob = bytes(blob)
        if len(blob) < 2 or blob[0] != _VERSION:
            raise SealError("blob", "unknown format")
        end = 2 + blob[1]
        if len(blob) < end + NONCE_BYTES + TAG_BYTES:
            raise SealError("blob", "truncated")
        try:
            key_id = blob[2:end].decode("ascii")
        except UnicodeDecodeError:
            raise SealError("blob", "malformed key id") from None
        aead = self._aeads.get(key_id)
        if aead is None:
            raise SealError("blob", "sealed under an unknown key id", code="UNKNOWN_KEY")
        nonce = blob[end : end + NONCE_BYTES]
        try:
            return aead.decrypt(nonce, blob[end + NONCE_BYTES :], blob[:end] + bytes(aad))
        except InvalidTag:
            raise SealError("blob", "authentication failed") from None

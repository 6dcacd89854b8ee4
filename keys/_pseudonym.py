"""HMAC pseudonyms of a citizen ID number (DESIGN.md, "Subjects and privacy").

Invariants: the ID number is normalised (surrounding whitespace stripped, a
lower-case ``x`` check character upper-cased) before hashing, so the same person
always maps to the same value; the ID number itself is never returned, logged
or put into an error message.  All three values are HMAC-SHA256 (32 bytes) with
a distinct secret: the region's storage secret, the province key, or the
per-consent binding salt.
"""

from __future__ import annotations

import hashlib
import hmac

from ._errors import KeysError

__all__ = ["normalise_id", "province_pseudonym", "subject_binding", "subject_key"]

MIN_SECRET_BYTES = 16


def normalise_id(id_number: str) -> str:
    """Strip whitespace and upper-case the check character (no other validation)."""
    if not isinstance(id_number, str):
        raise KeysError("id_number", "must be a string", code="INVALID_ID_NUMBER")
    text = id_number.strip().upper()
    if not text:
        raise KeysError("id_number", "must not be empty", code="INVALID_ID_NUMBER")
    return text


def _mac(secret: bytes, field: str, id_number: str) -> bytes:
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
        raise KeysError(field, f"must be at least {MIN_SECRET_BYTES} bytes", code="INVALID_KEY")
    return hmac.new(bytes(secret), normalise_id(id_number).encode("utf-8"), hashlib.sha256).digest()


def subject_key(secret: bytes, id_number: str) -> bytes:
    """Storage key of a subject: ``HMAC-SHA256(region secret, normalised ID)``."""
    return _mac(secret, "secret", id_number)


def province_pseudonym(province_key: bytes, id_number: str) -> bytes:
    """Pseudonym used in pushes to the hub: ``HMAC-SHA256(province key, normalised ID)``."""
    return _mac(province_key, "province_key", id_number)


def subject_binding(binding_salt: bytes, id_number: str) -> bytes:
    """Attestation subject binding: ``HMAC-SHA256(binding_salt, normalised ID)``."""
    return _mac(binding_salt, "binding_salt", id_number)

"""Parsing signed payloads: exactly one encoding of each message is accepted.

A signed payload (``Attestation``, ``Checkpoint``, ``StatusList``,
``KeySet``, ``TrustList``) is accepted only if its bytes are the canonical
protobuf encoding of the message they parse to (docs/SPEC.md section 2,
"Encoding of signed payloads"; docs/adr/0112):

* every string field is valid UTF-8 (protobuf's own proto3 check);
* no field number the schema does not define (unknown fields), at any depth;
* every singular field at most once (protobuf parsers silently merge a
  duplicated field: last scalar wins, sub-messages are merged), fields in
  field-number order, no default value written out, minimal varints.

The last two are checked together by re-encoding: unknown fields are dropped,
the message is serialised deterministically and compared with the input.  Two
byte strings that differ can therefore never both be accepted as the same
signed statement, and a verifier never acts on a field it does not know.

Unsigned containers (``SignedAttestation``, ``BatchedAttestation``,
``Envelope``, ``InclusionProof``, ``TrustBundle``) are parsed with
:func:`parse_container`: ordinary protobuf rules (anyone on the path may
re-frame them; nothing in them is believed before a signature or proof over
the payload holds), but bad UTF-8 or bad wire bytes are still the caller's
``code``, never an exception of the protobuf runtime.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from ._errors import VerificationError

__all__ = ["canonical_bytes", "parse_container", "parse_signed"]

M = TypeVar("M", bound=Message)

# upb raises DecodeError for bad UTF-8; the pure-Python runtime lets the
# UnicodeDecodeError (a ValueError) escape; deep nesting can hit RecursionError.
_PARSE_ERRORS = (DecodeError, ValueError, RecursionError)


def parse_container(cls: type[M], data: bytes, code: str, field: str, what: str) -> M:
    """Parse an unsigned container; any decoding failure is ``VerificationError(code)``."""
    m = cls()
    try:
        m.ParseFromString(bytes(data))
    except _PARSE_ERRORS:
        raise VerificationError(
            code, f"{what}: bad wire bytes, or a string that is not UTF-8", field=field
        ) from None
    return m


def canonical_bytes(m: Message) -> bytes:
    """The canonical encoding of ``m`` without its unknown fields (drops them from ``m``)."""
    m.DiscardUnknownFields()
    return m.SerializeToString(deterministic=True)


def parse_signed(cls: type[M], data: bytes, code: str, field: str, what: str) -> M:
    """Parse a signed payload and refuse any encoding but the canonical one (module doc)."""
    data = bytes(data)
    m = parse_container(cls, data, code, field, what)
    if canonical_bytes(m) != data:
        raise VerificationError(
            code,
            f"{what} is not canonically encoded (unknown or repeated field, or field order)",
            field=field,
        )
    return m

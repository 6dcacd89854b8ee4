"""The keys package's error tree: one base, a few classes, stable codes.

Every error carries a stable ``code`` string (the node maps it to a gRPC
status, the CLI prints it).  Every verification failure of a signed object is
a :class:`VerificationError` whose ``code`` is one of :data:`REASON_CODES`
(listed in docs/SPEC.md).  Messages name the offending field and never contain
a citizen ID number, a key's secret or a plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "REASON_CODES",
    "KeyRefusedError",
    "KeysError",
    "SealError",
    "VerificationError",
]

#: Stable reason codes of :class:`VerificationError` (docs/SPEC.md, "Reason codes").
REASON_CODES: frozenset[str] = frozenset(
    {
        "MALFORMED",
        "WRONG_PAYLOAD_TYPE",
        "UNKNOWN_KEY",
        "BAD_SIGNATURE",
        "ISSUER_MISMATCH",
        "KEY_NOT_VALID",
        "KEY_REVOKED",
        "BAD_KEY_SET",
        "BAD_PROOF",
        "EXPIRED",
        "NOT_YET_VALID",
        "WRONG_AUDIENCE",
        "NONCE_MISSING",
        "NONCE_MISMATCH",
        "SUBJECT_MISMATCH",
        "SCHEME_NOT_TRUSTED",
        "DISCLOSURE_MISMATCH",
        "SCENARIO_NOT_TRUSTED",
        "DISCLOSURE_NOT_ALLOWED",
        "STATUS_REVOKED",
        "STATUS_SUSPENDED",
        "STATUS_SUPERSEDED",
        "STATUS_UNAVAILABLE",
        "TRUST_INVALID",
        "TRUST_ROLLBACK",
        "TRUST_EXPIRED",
        "APPROVAL_INVALID",
        "MAPPING_NOT_APPROVED",
    }
)


class KeysError(Exception):
    """Base of every error raised by :mod:`keys`."""

    code: str = "KEYS_ERROR"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        self.field = field
        if code is not None:
            self.code = code
        super().__init__(f"{field}: {message}")
        self.message = message


class KeyRefusedError(KeysError):
    """A key is refused: weak/small-order public key, bad length, bad key file.

    ``code`` is one of ``WEAK_KEY``, ``INVALID_KEY``, ``BAD_PASSPHRASE``.
    """

    code = "INVALID_KEY"


class SealError(KeysError):
    """At-rest encryption failed: unknown key id, malformed blob, or tampering."""

    code = "SEAL_FAILED"


class VerificationError(KeysError):
    """A signed object failed verification; ``code`` is in :data:`REASON_CODES`.

    The same type is raised for every failure so callers fail closed with one
    ``except``; ``code`` (alias ``reason``) says why, for logs and exit codes.
    ``warnings`` lists the status lists skipped on the way (``keys.StatusWarning``,
    docs/SPEC.md section 8), so a caller can report them with the refusal.
    """

    code = "BAD_SIGNATURE"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str = "attestation",
        warnings: Sequence[Any] = (),
    ) -> None:
        if code not in REASON_CODES:  # pragma: no cover - programming error
            raise ValueError(f"unknown reason code {code!r}")
        super().__init__(field, message, code=code)
        self.warnings: tuple[Any, ...] = tuple(warnings)

    @property
    def reason(self) -> str:
        """The stable reason code (same as ``code``)."""
        return self.code

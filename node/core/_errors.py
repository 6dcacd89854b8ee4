"""The node's error tree and the ONE place that maps errors to gRPC status codes.

Invariants:

* every error a servicer raises on purpose is a :class:`NodeError` subclass
  with a stable ``code`` (the reason sent in trailing metadata ``huxin-reason``)
  and optionally the offending ``field`` (``huxin-field``);
* errors of the pure packages (``scoring``, ``keys``) are mapped here by
  class and code, never inside servicers;
* anything else becomes ``INTERNAL`` with reason ``INTERNAL`` and no detail:
  an exception text (or a peer's error) is never passed to our caller;
* messages never contain a citizen ID number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import grpc

from keys import KeysError, VerificationError
from scoring import ScoringError

__all__ = [
    "REASON_KEY",
    "AlreadyExistsError",
    "CodedNodeError",
    "DeadlineError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "Mapped",
    "NodeError",
    "NotFoundError",
    "PermissionDeniedError",
    "RelayedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "map_error",
    "own_data",
]

REASON_KEY = "huxin-reason"
FIELD_KEY = "huxin-field"


class NodeError(Exception):
    """Base of every deliberate node error; ``code`` is a stable reason string."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL
    code: str = "INTERNAL"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str = "",
        details: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details


class CodedNodeError(NodeError):
    """Base of a module's own error family (outbox, push, hub registry, snapshots,
    batch): the gRPC status follows the stable ``code`` through ``STATUS_BY_CODE``
    (unlisted codes: ``DEFAULT_STATUS``), so the code survives up to the caller."""

    STATUS_BY_CODE: ClassVar[Mapping[str, grpc.StatusCode]] = {}
    DEFAULT_STATUS: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, code: str, message: str, *, field: str = "") -> None:
        super().__init__(code, message, field=field)
        self.status = self.STATUS_BY_CODE.get(code, self.DEFAULT_STATUS)


class InvalidArgumentError(NodeError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class UnauthenticatedError(NodeError):
    status = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(NodeError):
    status = grpc.StatusCode.PERMISSION_DENIED


class FailedPreconditionError(NodeError):
    status = grpc.StatusCode.FAILED_PRECONDITION


class NotFoundError(NodeError):
    status = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(NodeError):
    status = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhaustedError(NodeError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineError(NodeError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED


class UnavailableError(NodeError):
    status = grpc.StatusCode.UNAVAILABLE


class RelayedError(NodeError):
    """A refusal by a node further down a routed request's path, relayed to our caller
    with that node's own status, reason and field (node.federation._route decides which pass)."""

    def __init__(
        self,
        status: grpc.StatusCode,
        code: str,
        message: str,
        *,
        field: str = "",
        details: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(code, message, field=field, details=details)
        self.status = status


class InternalError(NodeError):
    """Our own data or keys failed (a stored blob, a key file, signing our output)."""

    status = grpc.StatusCode.INTERNAL


@contextmanager
def own_data(what: str) -> Iterator[None]:
    """Around reading, unsealing or signing the node's OWN data: a keys error there
    is ``INTERNAL`` (reason ``OWN_DATA_UNUSABLE``), never the caller's
    ``INVALID_ARGUMENT`` (which :func:`map_error` gives a bare keys error)."""
    try:
        yield
    except KeysError as exc:
        raise InternalError("OWN_DATA_UNUSABLE", f"{what} is unusable ({exc.code})") from exc


@dataclass(frozen=True, slots=True)
class Mapped:
    """A gRPC status, a public message and the trailing metadata carrying the reason."""

    status: grpc.StatusCode
    reason: str
    message: str
    metadata: tuple[tuple[str, str | bytes], ...]


# keys' reason codes that say "the caller sent something that does not verify"
_KEYS_UNAUTHENTICATED = frozenset(
    {"UNKNOWN_KEY", "BAD_SIGNATURE", "UNKNOWN_ISSUER", "KEY_NOT_VALID", "KEY_REVOKED"}
)


def map_error(exc: BaseException) -> Mapped:
    """Map any exception to what the caller sees.  Unknown exceptions say nothing."""
    if isinstance(exc, NodeError):
        status, reason, message, field = exc.status, exc.code, exc.message, exc.field
        extra: tuple[tuple[str, str | bytes], ...] = exc.details
    elif isinstance(exc, ScoringError):
        status, reason, message, field = (
            grpc.StatusCode.INVALID_ARGUMENT,
            exc.code,
            exc.message,
            exc.field,
        )
        extra = ()
    elif isinstance(exc, VerificationError):
        status = (
            grpc.StatusCode.UNAUTHENTICATED
            if exc.code in _KEYS_UNAUTHENTICATED
            else grpc.StatusCode.INVALID_ARGUMENT
        )
        reason, message, field, extra = exc.code, exc.message, exc.field, ()
    elif isinstance(exc, KeysError):
        status, reason, message, field, extra = (
            grpc.StatusCode.INVALID_ARGUMENT,
            exc.code,
            exc.message,
            exc.field,
            (),
        )
    else:
        return Mapped(
            grpc.StatusCode.INTERNAL, "INTERNAL", "internal error", ((REASON_KEY, "INTERNAL"),)
        )
    metadata: tuple[tuple[str, str | bytes], ...] = ((REASON_KEY, reason),)
    if field:
        metadata += ((FIELD_KEY, field),)
    metadata += extra
    text = f"{reason}: {field}: {message}" if field else f"{reason}: {message}"
    return Mapped(status, reason, text, metadata)

"""The ONE table from the node's error tree to gRPC status codes, and ``map_error``.

Invariants:

* domain errors (node.core._errors) carry a reason, a message and a field and no
  status; this module alone decides the status a caller sees, so a status code
  written anywhere else in ``node/`` is a client reading a peer's answer;
* the status of an error is, in this order: the status a relayed refusal carries
  (:class:`RelayedError`); the reason's entry in :data:`REASON_STATUS` when the
  error is of a family that shares one class for many reasons (batch, outbox,
  push, hub registry, snapshots); the class's entry in :data:`CLASS_STATUS`
  (the first class of its MRO listed there);
* every reason a family raises in ``node/`` has its own row in
  :data:`REASON_STATUS` (a unit test collects them from the source), so no
  reason reaches its family's default by accident;
* errors of the pure packages (``scoring``, ``keys``) are mapped here by class
  and reason, never inside servicers;
* anything else becomes ``INTERNAL`` with reason ``INTERNAL`` and no detail: an
  exception text (or a peer's error) is never passed to our caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from keys import KeysError, VerificationError
from node.catalogue import CatalogueRefused
from node.core._errors import (
    FIELD_KEY,
    REASON_KEY,
    AlreadyExistsError,
    CodedNodeError,
    DeadlineError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NodeError,
    NotFoundError,
    PermissionDeniedError,
    RelayedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from node.federation._push import PushError
from node.federation._sync import MaterialRefused
from node.hub._registry import RegistryError
from node.monthly._batch import BatchError
from node.monthly._snapshots import SnapshotError
from node.store import CommitInDoubt, StorageUnavailable
from node.store._outbox import OutboxError
from scoring import ScoringError

__all__ = [
    "CLASS_STATUS",
    "DOWNSTREAM_STATUS",
    "FAMILIES",
    "REASON_STATUS",
    "RELAYED_STATUS",
    "Mapped",
    "map_error",
    "status_of",
]

S = grpc.StatusCode

#: the status of each error class: the class says the kind of refusal; a family's
#: row is its default for a reason computed at run time (a keys error's code)
CLASS_STATUS: Mapping[type[NodeError], grpc.StatusCode] = {
    InvalidArgumentError: S.INVALID_ARGUMENT,
    UnauthenticatedError: S.UNAUTHENTICATED,
    PermissionDeniedError: S.PERMISSION_DENIED,
    FailedPreconditionError: S.FAILED_PRECONDITION,
    NotFoundError: S.NOT_FOUND,
    AlreadyExistsError: S.ALREADY_EXISTS,
    ResourceExhaustedError: S.RESOURCE_EXHAUSTED,
    DeadlineError: S.DEADLINE_EXCEEDED,
    UnavailableError: S.UNAVAILABLE,
    # the database cannot be reached now (PostgreSQL down, connection lost; issue 18)
    StorageUnavailable: S.UNAVAILABLE,
    # the connection dropped during COMMIT: the outcome is unknown (docs/adr/0700)
    CommitInDoubt: S.UNAVAILABLE,
    UnimplementedError: S.UNIMPLEMENTED,
    InternalError: S.INTERNAL,
    BatchError: S.FAILED_PRECONDITION,
    RegistryError: S.INVALID_ARGUMENT,
    OutboxError: S.INTERNAL,
    PushError: S.INTERNAL,
    SnapshotError: S.INTERNAL,
    # a peer's material refused while syncing: logged by sync, never a caller's answer
    CatalogueRefused: S.INTERNAL,
    MaterialRefused: S.INTERNAL,
    NodeError: S.INTERNAL,
}

#: the families whose reason decides the status (one class, many reasons)
FAMILIES: tuple[type[CodedNodeError], ...] = (
    BatchError,
    RegistryError,
    OutboxError,
    PushError,
    SnapshotError,
)

#: reason -> status for the families' errors; every reason a family raises is a row
REASON_STATUS: Mapping[str, grpc.StatusCode] = {
    # the monthly batch (node.monthly._batch, node.model)
    "INVALID_PERIOD": S.INVALID_ARGUMENT,
    "INVALID_CHUNK": S.INVALID_ARGUMENT,
    "UNKNOWN_CATEGORY": S.FAILED_PRECONDITION,
    "SCHEME_EXPIRED": S.FAILED_PRECONDITION,
    # the hub's registry (node.hub._registry)
    "INVALID_REGISTRATION": S.INVALID_ARGUMENT,
    "ROOT_KEY_CHANGED": S.FAILED_PRECONDITION,
    "KEY_SET_ROLLBACK": S.FAILED_PRECONDITION,
    # the outbox (node.store._outbox)
    "UNKNOWN_EVENT_KIND": S.INVALID_ARGUMENT,
    "INVALID_EVENT_ID": S.INVALID_ARGUMENT,
    "INVALID_PAYLOAD": S.INVALID_ARGUMENT,
    "EVENT_CONFLICT": S.FAILED_PRECONDITION,
    "SEALED_ID_UNREADABLE": S.INTERNAL,
    # the push to the hub (node.federation._push)
    "PUSH_NOT_CONFIGURED": S.FAILED_PRECONDITION,
    "HUB_KEY_REQUIRED": S.FAILED_PRECONDITION,
    "OUTBOX_BEHIND_HUB": S.FAILED_PRECONDITION,
    "BAD_RECEIPT": S.FAILED_PRECONDITION,
    "HUB_CURSOR_STUCK": S.UNAVAILABLE,
    "BATCH_MISSING": S.INTERNAL,
    # statutory snapshots (node.monthly._snapshots)
    "RUN_NOT_FOUND": S.NOT_FOUND,
    "RUN_NOT_FINISHED": S.FAILED_PRECONDITION,
    "HUB_NOT_CONFIGURED": S.FAILED_PRECONDITION,
    "PROVINCE_KEY_MISSING": S.FAILED_PRECONDITION,
    "PROVINCE_KEY_INVALID": S.FAILED_PRECONDITION,
    "INVALID_BATCH_SIZE": S.INVALID_ARGUMENT,
}

#: a downstream hop's status -> our error class and reason when the reason is not
#: one we relay by name (node.federation._route); statuses not listed mean the hop
#: failed us (``UnavailableError``, ``UPSTREAM_UNAVAILABLE``)
DOWNSTREAM_STATUS: Mapping[grpc.StatusCode, tuple[type[NodeError], str]] = {
    S.RESOURCE_EXHAUSTED: (ResourceExhaustedError, "UPSTREAM_REFUSED"),
    S.PERMISSION_DENIED: (PermissionDeniedError, "UPSTREAM_REFUSED"),
    S.UNAUTHENTICATED: (PermissionDeniedError, "UPSTREAM_REFUSED"),
    S.NOT_FOUND: (FailedPreconditionError, "UPSTREAM_REFUSED"),
    S.INVALID_ARGUMENT: (FailedPreconditionError, "UPSTREAM_REFUSED"),
    S.FAILED_PRECONDITION: (FailedPreconditionError, "UPSTREAM_REFUSED"),
    S.DEADLINE_EXCEEDED: (DeadlineError, "UPSTREAM_DEADLINE_EXCEEDED"),
    S.UNAVAILABLE: (UnavailableError, "UPSTREAM_UNAVAILABLE"),
}

#: the status our caller sees for a refusal relayed by name: the refusing node's
#: own, except that its UNAUTHENTICATED (of our relay) is our PERMISSION_DENIED
RELAYED_STATUS: Mapping[grpc.StatusCode, grpc.StatusCode] = {
    S.RESOURCE_EXHAUSTED: S.RESOURCE_EXHAUSTED,
    S.PERMISSION_DENIED: S.PERMISSION_DENIED,
    S.UNAUTHENTICATED: S.PERMISSION_DENIED,
    S.NOT_FOUND: S.NOT_FOUND,
    S.INVALID_ARGUMENT: S.INVALID_ARGUMENT,
    S.FAILED_PRECONDITION: S.FAILED_PRECONDITION,
}

# keys' reason codes that say "the caller sent something that does not verify"
_KEYS_UNAUTHENTICATED = frozenset(
    {"UNKNOWN_KEY", "BAD_SIGNATURE", "UNKNOWN_ISSUER", "KEY_NOT_VALID", "KEY_REVOKED"}
)


def status_of(exc: NodeError) -> grpc.StatusCode:
    """The status a caller sees for one of the node's own errors (see the module's order)."""
    if isinstance(exc, RelayedError):
        return grpc.StatusCode[exc.status_name]
    if isinstance(exc, FAMILIES) and exc.code in REASON_STATUS:
        return REASON_STATUS[exc.code]
    for cls in type(exc).__mro__:
        status = CLASS_STATUS.get(cls)
        if status is not None:
            return status
    return S.INTERNAL  # unreachable: NodeError is a row


@dataclass(frozen=True, slots=True)
class Mapped:
    """A gRPC status, a public message and the trailing metadata carrying the reason."""

    status: grpc.StatusCode
    reason: str
    message: str
    metadata: tuple[tuple[str, str | bytes], ...]


def map_error(exc: BaseException) -> Mapped:
    """Map any exception to what the caller sees.  Unknown exceptions say nothing."""
    extra: tuple[tuple[str, str | bytes], ...] = ()
    if isinstance(exc, NodeError):
        status, reason, message, field = status_of(exc), exc.code, exc.message, exc.field
        extra = exc.details
    elif isinstance(exc, ScoringError):
        status, reason, message, field = S.INVALID_ARGUMENT, exc.code, exc.message, exc.field
    elif isinstance(exc, VerificationError):
        status = S.UNAUTHENTICATED if exc.code in _KEYS_UNAUTHENTICATED else S.INVALID_ARGUMENT
        reason, message, field = exc.code, exc.message, exc.field
    elif isinstance(exc, KeysError):
        status, reason, message, field = S.INVALID_ARGUMENT, exc.code, exc.message, exc.field
    else:
        return Mapped(S.INTERNAL, "INTERNAL", "internal error", ((REASON_KEY, "INTERNAL"),))
    metadata: tuple[tuple[str, str | bytes], ...] = ((REASON_KEY, reason),)
    if field:
        metadata += ((FIELD_KEY, field),)
    metadata += extra
    text = f"{reason}: {field}: {message}" if field else f"{reason}: {message}"
    return Mapped(status, reason, text, metadata)

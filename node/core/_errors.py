"""The node's error tree: what went wrong, in domain words, with no transport in it.

Invariants:

* every error the node raises on purpose is a :class:`NodeError` subclass with a
  stable ``code`` (the reason sent in trailing metadata ``huxin-reason``), a
  message and optionally the offending ``field`` (``huxin-field``);
* an error carries NO gRPC status: the class says what kind of refusal it is
  (``InvalidArgumentError``: the caller's input; ``NotFoundError``: nothing
  there; a family such as the batch or outbox errors: its reason decides), and
  the ONE table at the RPC edge (:mod:`node.rpc._status`) turns that into a
  status code, as the CLI (:mod:`node.cli._main`) turns it into an exit code;
* this module imports no transport, so storage and the domain rooms raise
  these errors without importing ``grpc``;
* messages never contain a citizen ID number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from keys import KeysError

__all__ = [
    "FIELD_KEY",
    "REASON_KEY",
    "AlreadyExistsError",
    "CodedNodeError",
    "DeadlineError",
    "FailedPreconditionError",
    "HuxinError",
    "InternalError",
    "InvalidArgumentError",
    "NodeError",
    "NotFoundError",
    "PermissionDeniedError",
    "RelayedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "own_data",
]

REASON_KEY = "huxin-reason"
FIELD_KEY = "huxin-field"


class HuxinError(Exception):
    """Root of every error the node raises on purpose: a stable ``code`` and a message.

    Two branches: :class:`NodeError`, a refusal a caller may be told (its reason and
    message reach the caller through node.rpc._status); and the node's own operational
    errors (config, storage, backups, trust list, certificates, ...), which subclass
    this root directly and reach a caller only as a bare ``INTERNAL``.  The CLI maps
    the whole tree to exit codes (node.cli._main)."""

    code: str = "INTERNAL"


class NodeError(HuxinError):
    """Base of every deliberate refusal a caller may see; ``code`` is a stable reason string."""

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
    batch): one class for many reasons, so the status at the RPC edge follows the
    stable ``code`` (node.rpc._status.REASON_STATUS), then the family's default."""

    def __init__(self, code: str, message: str, *, field: str = "") -> None:
        super().__init__(code, message, field=field)


class InvalidArgumentError(NodeError):
    """The caller's input is malformed or out of bounds; ``field`` names it."""


class UnauthenticatedError(NodeError):
    """The caller is not who it needs to be shown to be."""


class PermissionDeniedError(NodeError):
    """The caller is known but may not do this."""


class FailedPreconditionError(NodeError):
    """The request is well formed but the node's state refuses it."""


class NotFoundError(NodeError):
    """What the request names does not exist here."""


class AlreadyExistsError(NodeError):
    """What the request would create exists already."""


class ResourceExhaustedError(NodeError):
    """A budget (rate, size, count) is spent."""


class DeadlineError(NodeError):
    """The request ran out of time."""


class UnavailableError(NodeError):
    """A collaborator (a peer, the hub) cannot be reached now; retrying may help."""


class UnimplementedError(NodeError):
    """This node does not offer the operation (a hub that does not route)."""


class RelayedError(NodeError):
    """A refusal by a node further down a routed request's path, relayed to our caller
    with that node's own status, reason and field (node.federation._route decides which pass).

    ``status_name`` is the name of the status our caller sees (``"PERMISSION_DENIED"``),
    a string so that this tree stays free of the transport."""

    def __init__(
        self,
        status_name: str,
        code: str,
        message: str,
        *,
        field: str = "",
        details: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(code, message, field=field, details=details)
        self.status_name = status_name


class InternalError(NodeError):
    """Our own data or keys failed (a stored blob, a key file, signing our output)."""


@contextmanager
def own_data(what: str) -> Iterator[None]:
    """Around reading, unsealing or signing the node's OWN data: a keys error there
    is ``INTERNAL`` (reason ``OWN_DATA_UNUSABLE``), never the caller's
    ``INVALID_ARGUMENT`` (which node.rpc._status.map_error gives a bare keys error)."""
    try:
        yield
    except KeysError as exc:
        raise InternalError("OWN_DATA_UNUSABLE", f"{what} is unusable ({exc.code})") from exc

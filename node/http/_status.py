"""The HTTP status of every refusal, derived from the ONE gRPC table, and the error body.

Invariants: the status a caller sees over HTTP is ``HTTP_STATUS[code]`` of the gRPC
code :func:`node.rpc._status.map_error` gives the same exception (HTTP's own 413 and
405 for ``MESSAGE_TOO_LARGE`` and ``METHOD_NOT_ALLOWED``, :data:`REASON_STATUS`), so a reason maps
to the same kind of refusal on both channels and a new reason needs no row here;
the body is always ``{"code", "reason", "field", "message"}`` (``code`` the gRPC
status name, ``reason`` the stable reason, ``field`` the offending field or "");
an exception that is not one of the node's refusals is ``INTERNAL`` with a
generic message (nothing of the implementation reaches the caller); a refusal
that carries ``retry-after`` (rate limits) sets the ``Retry-After`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from keys import KeysError
from node.core._errors import NodeError
from node.exchange._throttle import RETRY_AFTER_KEY
from node.rpc._status import map_error
from scoring import ScoringError

__all__ = ["HTTP_STATUS", "REASON_STATUS", "HttpRefusal", "refusal_of"]

S = grpc.StatusCode

#: gRPC status -> HTTP status (the only second table: it names no reason)
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    S.OK: 200,
    S.INVALID_ARGUMENT: 400,
    S.OUT_OF_RANGE: 400,
    S.UNAUTHENTICATED: 401,
    S.PERMISSION_DENIED: 403,
    S.NOT_FOUND: 404,
    S.ALREADY_EXISTS: 409,
    # the request is well formed but the node's state refuses it (a withdrawn consent)
    S.FAILED_PRECONDITION: 409,
    S.ABORTED: 409,
    S.RESOURCE_EXHAUSTED: 429,
    S.CANCELLED: 499,
    S.UNIMPLEMENTED: 501,
    S.UNAVAILABLE: 503,
    S.DEADLINE_EXCEEDED: 504,
    S.INTERNAL: 500,
    S.UNKNOWN: 500,
    S.DATA_LOSS: 500,
}
#: the two reasons HTTP has its own status for (RFC 9110 15.5.14, 15.5.6); the gRPC
#: code and the reason stay the table's
REASON_STATUS: Mapping[str, int] = {"MESSAGE_TOO_LARGE": 413, "METHOD_NOT_ALLOWED": 405}


@dataclass(frozen=True, slots=True)
class HttpRefusal:
    """What an HTTP caller sees of one refusal."""

    status: int
    body: dict[str, str]
    headers: dict[str, str]


def refusal_of(exc: BaseException) -> HttpRefusal:
    """The HTTP refusal of any exception (see the module's invariants)."""
    mapped = map_error(exc)
    message, field = "internal error", ""
    if isinstance(exc, NodeError | ScoringError | KeysError) and mapped.reason != "INTERNAL":
        message = str(getattr(exc, "message", "")) or mapped.reason
        field = str(getattr(exc, "field", "") or "")
    elif mapped.reason != "INTERNAL":  # pragma: no cover - every mapped kind is above
        message = mapped.reason
    headers: dict[str, str] = {}
    for key, value in mapped.metadata:
        if key == RETRY_AFTER_KEY:
            headers["Retry-After"] = value if isinstance(value, str) else value.decode()
    body: dict[str, Any] = {
        "code": mapped.status.name,
        "reason": mapped.reason,
        "field": field,
        "message": message,
    }
    status = REASON_STATUS.get(mapped.reason) or HTTP_STATUS.get(mapped.status, 500)
    return HttpRefusal(status, body, headers)

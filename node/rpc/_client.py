"""Client helpers: mTLS peer channels, citizen channels, reading error reasons.

Invariants: a peer channel always presents a client certificate and checks
the server against the federation CA; the server name checked is the
``localhost``/``127.0.0.1`` SAN of development certificates unless
``server_name`` says otherwise; an error's reason is read only from our own
server's trailing metadata; a router passes a downstream reason on only if it
is one of the known reason codes (``node.federation._route.KNOWN_REASONS``), never a
downstream's free text.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from node.core._errors import FIELD_KEY, REASON_KEY
from node.pb.v1 import node_pb2
from node.rpc._identity import IDENTITY_METADATA

__all__ = [
    "REJECTION_KEY",
    "batch_rejection_of",
    "citizen_channel",
    "identity_metadata",
    "peer_channel",
    "reason_of",
]

#: Trailing metadata key of a refused batch's serialised ``BatchRejection``.
REJECTION_KEY = "huxin-batch-rejection-bin"


def _options(server_name: str | None, max_bytes: int) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
    ]
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts


def peer_channel(
    target: str,
    ca_pem: bytes,
    cert_pem: bytes | None,
    key_pem: bytes | None,
    *,
    server_name: str | None = None,
    max_bytes: int = 4 * 1024 * 1024,
) -> aio.Channel:
    """A mutual-TLS channel (``cert_pem``/``key_pem`` None: TLS without a client cert)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )
    return aio.secure_channel(target, creds, options=_options(server_name, max_bytes))


def citizen_channel(target: str, ca_pem: bytes, *, server_name: str | None = None) -> aio.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return aio.secure_channel(target, creds, options=_options(server_name, 4 * 1024 * 1024))


def identity_metadata(assertion: bytes) -> tuple[tuple[str, bytes], ...]:
    """Call metadata carrying a citizen's identity assertion, for ONE call: the node
    accepts each assertion once (``IDENTITY_REPLAYED``), so mint a fresh one per call."""
    return ((IDENTITY_METADATA, assertion),)


def _trailer(err: BaseException, name: str) -> str:
    if not isinstance(err, aio.AioRpcError):
        return ""
    trailing: Any = err.trailing_metadata() or ()
    for key, value in trailing:
        if key == name:
            return value if isinstance(value, str) else bytes(value).decode()
    return ""


def reason_of(err: BaseException) -> str:
    """The stable reason of an RPC error from our server ('' if none)."""
    return _trailer(err, REASON_KEY)


def field_of(err: BaseException) -> str:
    """The request field an RPC error from our server names ('' if none)."""
    return _trailer(err, FIELD_KEY)


def batch_rejection_of(err: BaseException) -> node_pb2.BatchRejection | None:
    """The ``BatchRejection`` of a refused batch (None if absent or unreadable).

    Bounded by the server: ``rejections`` holds the first problems;
    ``rejected_total``, ``truncated`` and ``summary`` (count per field and code)
    describe all of them.  A server from before the bound sends only
    ``rejections``; then ``rejected_total`` is 0 and the list is complete.
    """
    if not isinstance(err, aio.AioRpcError | grpc.RpcError):
        return None
    call: Any = err
    try:
        trailing: Any = call.trailing_metadata() or ()
    except AttributeError:
        return None
    for key, value in trailing:
        if key == REJECTION_KEY and isinstance(value, bytes):
            try:
                return node_pb2.BatchRejection.FromString(value)
            except DecodeError:  # a malformed trailer is no rejection list
                return None
    return None

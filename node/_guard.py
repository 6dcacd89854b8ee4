"""The server interceptor every unary call passes through.

In this order it: reads the caller's identity from its verified TLS client
certificate (the region id in the ``huxin://region/`` SAN — never a field the
caller sends); refuses a call past its deadline; enforces the per-peer limits
(request size, concurrent calls); runs the handler; maps any exception to a
gRPC status with a stable reason in trailing metadata via
:func:`node._errors.map_error` (the one place); records metrics and writes one
structured log line (method, peer, code, reason, duration — never payloads)
through :class:`node._observe.AccessLog`, which writes it right after the
handler has returned, off the response's path (the duration is measured up to
the handler's end, as before).  The wrapped handler of a method is built once
and reused while gRPC hands back the same handler for it.

The identity is exposed to servicers through :func:`caller`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import grpc
from grpc import aio

from keys import KeysError, region_of_certificate

from ._callers import CallerCheck
from ._config import Limits
from ._errors import (
    DeadlineError,
    NodeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    map_error,
)
from ._observe import AccessLog, Metrics, log_event
from ._throttle import QueryThrottle
from ._trust import ON_BEHALF_KEY, TrustState

__all__ = ["GuardInterceptor", "caller", "require_caller"]

_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("huxin_caller", default=None)
# The only method a hub or a region may call on behalf of another identity (ADR 0411).
RELAYABLE_METHODS = frozenset({"/huxin.v1.PeerService/RequestAttestation"})
_PASS_THROUGH_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


def caller() -> str | None:
    """The certificate identity of the current call's peer (None without a client cert)."""
    return _CALLER.get()


def require_caller() -> str:
    who = _CALLER.get()
    if who is None:
        raise UnauthenticatedError("NO_CLIENT_CERTIFICATE", "a client certificate is required")
    return who


@lru_cache(maxsize=1024)
def _region_of(pem: bytes) -> str | None:
    try:
        return region_of_certificate(pem)
    except KeysError:
        return None


def _on_behalf_of(context: Any) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == ON_BEHALF_KEY:
            return v if isinstance(v, str) else bytes(v).decode()
    return ""


def identity_of(context: Any) -> str | None:
    auth = context.auth_context()
    certs = auth.get("x509_pem_cert") if auth else None
    if not certs:
        return None
    return _region_of(bytes(certs[0]))


class GuardInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Identity, deadline, limits, error mapping, metrics and logs for unary calls."""

    def __init__(
        self,
        limits: Limits,
        metrics: Metrics,
        *,
        require_certificate: bool,
        trust: TrustState | None = None,
        throttle: QueryThrottle | None = None,
        callers: CallerCheck | None = None,
    ) -> None:
        self._limits = limits
        self._callers = callers  # the certificate itself: pins and client registry (ADR 0415)
        self._throttle = throttle  # rights: third-party query rate (N23)
        self._trust = trust  # relayed calls (``huxin-on-behalf-of``) are vouched by it
        self._metrics = metrics
        self._access = AccessLog(metrics)
        self._require_cert = require_certificate
        self._inflight: dict[str, int] = {}
        # method -> (gRPC's handler, our wrapped handler), rebuilt if gRPC's changes
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    def inflight(self) -> int:
        return sum(self._inflight.values())

    def flush(self) -> None:
        """Write access lines and metrics still queued (e.g. before shutdown)."""
        self._access.flush()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (
            handler is None
            or handler.unary_unary is None
            or method.startswith(_PASS_THROUGH_PREFIXES)
        ):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        inner = handler.unary_unary
        assert inner is not None  # intercept_service passes only unary-unary handlers
        short = method.rsplit("/", 1)[-1]
        access = self._access

        async def guarded(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            peer = identity_of(context)
            token = _CALLER.set(peer)
            # Citizens have no certificate: their calls are limited per connection
            # (client address), so a few slow callers cannot starve everyone else.
            key = peer or f"citizen:{context.peer()}"
            counted = False
            code, reason = "OK", ""
            via = ""
            try:
                if self._require_cert and peer is None:
                    raise UnauthenticatedError(
                        "NO_CLIENT_CERTIFICATE", "a certificate with a region id is required"
                    )
                if self._callers is not None and peer is not None:
                    self._callers.admit(method, peer, context)
                relayed = _on_behalf_of(context) if peer is not None else ""
                if relayed and peer is not None:
                    if method not in RELAYABLE_METHODS:
                        # A relay speaks for a requester of attestations only: never
                        # for a source department, a pusher or anyone else.
                        raise PermissionDeniedError(
                            "RELAY_NOT_TRUSTED",
                            f"{short} cannot be called on behalf of another identity",
                            field=ON_BEHALF_KEY,
                        )
                    if self._trust is None:
                        raise PermissionDeniedError(
                            "RELAY_NOT_TRUSTED", "this node does not accept relayed calls"
                        )
                    via, peer = peer, self._trust.vouch(peer, relayed)
                    _CALLER.set(peer)
                remaining = context.time_remaining()
                if remaining is not None and remaining <= 0:
                    raise DeadlineError("DEADLINE_EXCEEDED", "deadline passed before handling")
                size_limit = self._limits.message_bytes_for(key)
                if request.ByteSize() > size_limit:
                    raise ResourceExhaustedError(
                        "MESSAGE_TOO_LARGE",
                        f"request exceeds {size_limit} bytes for this peer",
                        field="request",
                    )
                if self._inflight.get(key, 0) >= self._limits.concurrency_for(key):
                    raise ResourceExhaustedError(
                        "TOO_MANY_CONCURRENT_CALLS",
                        "too many concurrent calls from this peer; retry later",
                    )
                if self._throttle is not None and self._throttle.applies_to(short):
                    self._throttle.check(peer or key)
                self._inflight[key] = self._inflight.get(key, 0) + 1
                counted = True
                return await inner(request, context)  # type: ignore[arg-type]
            except aio.AbortError:
                raise
            except Exception as exc:
                mapped = map_error(exc)
                code, reason = mapped.status.name, mapped.reason
                if not isinstance(exc, NodeError) and mapped.reason == "INTERNAL":
                    log_event(
                        "internal error",
                        40,
                        method=short,
                        peer=peer or "citizen",
                        exc=type(exc).__name__,
                    )
                await context.abort(
                    mapped.status, mapped.message, trailing_metadata=mapped.metadata
                )
                raise  # pragma: no cover - abort always raises
            finally:
                if counted:
                    left = self._inflight[key] - 1
                    if left:
                        self._inflight[key] = left
                    else:
                        del self._inflight[key]  # one entry per live caller, not per address seen
                _CALLER.reset(token)
                # no client addresses in logs; written after the response (AccessLog)
                access.record(
                    short,
                    peer=peer or "citizen",
                    via=via,
                    code=code,
                    reason=reason,
                    seconds=time.perf_counter() - started,
                )

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

"""The server interceptor every call on both ports passes through (docs/adr/0322).

For each method gRPC resolves, the guard builds once (and reuses while gRPC hands
back the same handler) a replacement handler that reads the request messages
itself, so nothing reaches a servicer before the guard has checked it:

* on the call's headers, before any request message is read or anything is
  queued for the call (:meth:`GuardInterceptor.intercept_service`): on a port
  with an identity verifier (the citizen port) the identity assertion in
  ``huxin-identity-bin`` is verified, exactly once per call; a call without a
  valid one is refused at once with UNAUTHENTICATED and its reason.  Methods in
  ``public_methods``, health and reflection need none; calls to public methods
  carry no identity, so they are capped node-wide (``max_public_calls``, over all
  connections): one more is refused at once with RESOURCE_EXHAUSTED
  ``TOO_MANY_PUBLIC_CALLS`` before any message is read, and their request message
  must come within the shorter ``public_request_timeout``;
* when the call starts: the caller's identity from its verified TLS client
  certificate (the region id in the ``huxin://region/`` SAN — never a field the
  caller sends), a relayed caller (``huxin-on-behalf-of``, docs/adr/0411), the
  deadline, and the per-peer limit of concurrent calls, which counts unary calls
  and client streams (``Push``) alike for as long as they run;
* every request message must arrive within ``request_timeout`` seconds (of the
  call's start, or of the previous message of a client stream), is held to the
  per-peer size limit and is decoded by the guard: bytes that do not decode are
  INVALID_ARGUMENT ``MALFORMED_REQUEST`` on every method;
* the handler runs; a unary response is serialised by the guard as well; every
  exception is mapped by :func:`node.core._errors.map_error` (the one place) to a
  status with a stable reason in trailing metadata — never a Python class name;
* one structured access line and the call's metrics (method, peer, code, reason,
  duration — never payloads) through :class:`node.core._observe.AccessLog`, written
  right after the handler has returned, off the response's path.

Health and reflection get the reading, decoding and error mapping only (no
identity, no per-peer count, no access line: a health probe is not a caller).

The certificate identity is exposed to servicers through :func:`caller`, the
verified citizen through :func:`citizen`.  Both hold for the running call only:
grpc.aio runs the interceptor and the handler of a call in that call's own task.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeAlias

import grpc
from grpc import aio
from grpc.aio import EOF  # type: ignore[attr-defined]  # end of a request stream

from keys import KeysError, region_of_certificate
from node.core._config import Limits
from node.core._errors import (
    REASON_KEY,
    DeadlineError,
    InvalidArgumentError,
    NodeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    map_error,
)
from node.core._observe import AccessLog, Metrics, log_event
from node.exchange._throttle import QueryThrottle
from node.federation._callers import CallerCheck
from node.federation._trust import ON_BEHALF_KEY, TrustState
from node.rpc._identity import IDENTITY_METADATA, AuthenticatedCitizen, IdentityVerifier

__all__ = [
    "MALFORMED_REQUEST",
    "TOO_MANY_PUBLIC_CALLS",
    "GuardInterceptor",
    "caller",
    "citizen",
    "require_caller",
    "require_citizen",
]

_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("huxin_caller", default=None)
_CITIZEN: contextvars.ContextVar[AuthenticatedCitizen | None] = contextvars.ContextVar(
    "huxin_citizen", default=None
)
# The only method a hub or a region may call on behalf of another identity (ADR 0411).
RELAYABLE_METHODS = frozenset({"/huxin.v1.PeerService/RequestAttestation"})
_PASS_THROUGH_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
MALFORMED_REQUEST = "MALFORMED_REQUEST"
REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
TOO_MANY_PUBLIC_CALLS = "TOO_MANY_PUBLIC_CALLS"


def caller() -> str | None:
    """The certificate identity of the current call's peer (None without a client cert)."""
    return _CALLER.get()


def require_caller() -> str:
    who = _CALLER.get()
    if who is None:
        raise UnauthenticatedError("NO_CLIENT_CERTIFICATE", "a client certificate is required")
    return who


def citizen() -> AuthenticatedCitizen | None:
    """The citizen the guard authenticated for the current call (None on a public method)."""
    return _CITIZEN.get()


def require_citizen() -> AuthenticatedCitizen:
    """The current call's citizen; fails closed when the guard verified none."""
    who = _CITIZEN.get()
    if who is None:
        raise UnauthenticatedError(
            "IDENTITY_MISSING", "no identity assertion", field=IDENTITY_METADATA
        )
    return who


@lru_cache(maxsize=1024)
def _region_of(pem: bytes) -> str | None:
    try:
        return region_of_certificate(pem)
    except KeysError:
        return None


def _metadata_value(metadata: Sequence[tuple[str, Any]] | None, key: str) -> Any:
    for k, v in metadata or ():
        if k == key:
            return v
    return None


def _on_behalf_of(context: Any) -> str:
    value = _metadata_value(context.invocation_metadata(), ON_BEHALF_KEY)
    if value is None:
        return ""
    return value if isinstance(value, str) else bytes(value).decode()


def identity_of(context: Any) -> str | None:
    auth = context.auth_context()
    certs = auth.get("x509_pem_cert") if auth else None
    if not certs:
        return None
    return _region_of(bytes(certs[0]))


def _decoder(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """``deserializer`` with every failure turned into ``MALFORMED_REQUEST``: corrupt
    wire bytes, a truncated field and invalid UTF-8 in a string field alike."""
    if deserializer is None:
        return lambda raw: raw

    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:
            raise InvalidArgumentError(
                MALFORMED_REQUEST, "the request message is not a valid message", field="request"
            ) from None

    return decode


def log_internal(exc: BaseException, method: str, peer: str) -> None:
    """The full detail of an unexpected error, for the operator's log only (redacted
    like every line); the caller sees ``INTERNAL`` and a generic message."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else ""
    log_event(
        "internal error",
        40,
        method=method,
        peer=peer,
        exc=type(exc).__name__,
        detail=str(exc)[:500],
        where=where,
    )


def _reason_in(metadata: Any) -> str:
    value = _metadata_value(metadata, REASON_KEY)
    return value if isinstance(value, str) else ""


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class GuardInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Identity, deadlines, limits, decoding, error mapping, metrics and logs for calls."""

    def __init__(
        self,
        limits: Limits,
        metrics: Metrics,
        *,
        require_certificate: bool,
        trust: TrustState | None = None,
        throttle: QueryThrottle | None = None,
        callers: CallerCheck | None = None,
        identity: IdentityVerifier | None = None,
        now: Callable[[], int] = lambda: int(time.time()),
        public_methods: frozenset[str] = frozenset(),
        request_timeout: float = 30.0,
        max_public_calls: int | None = None,
        public_request_timeout: float | None = None,
    ) -> None:
        self._limits = limits
        self._callers = callers  # the certificate itself: pins and client registry (ADR 0415)
        self._throttle = throttle  # rights: third-party query rate (N23)
        self._trust = trust  # relayed calls (``huxin-on-behalf-of``) are vouched by it
        self._identity = identity  # citizen port: assertions checked on the headers
        self._now = now
        self._public = public_methods
        self._request_timeout = request_timeout
        # Calls without a verified identity (public methods on the citizen port),
        # counted node-wide, not per connection; None = no cap.
        self._max_public = max_public_calls
        self._public_timeout = min(request_timeout, public_request_timeout or request_timeout)
        self._public_inflight = 0
        self._metrics = metrics
        self._access = AccessLog(metrics)
        self._require_cert = require_certificate
        self._inflight: dict[str, int] = {}
        # method -> (gRPC's handler, our wrapped handler), rebuilt if gRPC's changes
        self._wrapped: dict[str, tuple[Any, Handler]] = {}

    def inflight(self) -> int:
        return sum(self._inflight.values())

    def public_inflight(self) -> int:
        """Calls running now that carry no verified identity (public citizen methods)."""
        return self._public_inflight

    def flush(self) -> None:
        """Write access lines and metrics still queued (e.g. before shutdown)."""
        self._access.flush()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if (
            self._identity is not None
            and method not in self._public
            and not method.startswith(_PASS_THROUGH_PREFIXES)
        ):
            try:
                blob = _metadata_value(handler_call_details.invocation_metadata, IDENTITY_METADATA)
                who = self._identity.verify(blob if isinstance(blob, bytes) else None, self._now())
            except Exception as exc:
                return self._refusal(method, exc)
            _CITIZEN.set(who)  # this call's task only; read by the handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _refusal(self, method: str, exc: Exception) -> Handler:
        """A handler that refuses the call at once, without reading its request."""
        mapped = map_error(exc)
        short = method.rsplit("/", 1)[-1]
        if not isinstance(exc, NodeError) and mapped.reason == "INTERNAL":
            log_internal(exc, short, "citizen")
        started = time.perf_counter()

        async def refuse(requests: Any, context: aio.ServicerContext[Any, Any]) -> None:
            try:
                await context.abort(
                    mapped.status, mapped.message, trailing_metadata=mapped.metadata
                )
            finally:
                self._access.record(
                    short,
                    peer="citizen",
                    via="",
                    code=mapped.status.name,
                    reason=mapped.reason,
                    seconds=time.perf_counter() - started,
                )

        return grpc.stream_unary_rpc_method_handler(refuse)

    async def _message(
        self, context: Any, decode: Callable[[bytes], Any], limit: int, timeout: float
    ) -> Any:
        """The next request message, decoded; :data:`grpc.aio.EOF` at the end of the stream."""
        try:
            async with asyncio.timeout(timeout):
                raw = await context.read()
        except TimeoutError:
            raise DeadlineError(
                REQUEST_TIMEOUT,
                f"no request message within {timeout:g} s",
                field="request",
            ) from None
        if raw is EOF:
            return raw
        if len(raw) > limit:
            raise ResourceExhaustedError(
                "MESSAGE_TOO_LARGE", f"request exceeds {limit} bytes for this peer", field="request"
            )
        return decode(raw)

    async def _stream(
        self, context: Any, decode: Callable[[bytes], Any], limit: int, timeout: float
    ) -> AsyncIterator[Any]:
        while (message := await self._message(context, decode, limit, timeout)) is not EOF:
            yield message

    def _admit(self, method: str, short: str, context: Any) -> tuple[str | None, str]:
        """The caller (after a relay, if any) and the relaying peer ("" if none)."""
        peer = identity_of(context)
        if self._require_cert and peer is None:
            raise UnauthenticatedError(
                "NO_CLIENT_CERTIFICATE", "a certificate with a region id is required"
            )
        if self._callers is not None and peer is not None:
            self._callers.admit(method, peer, context)  # pins and client registry (ADR 0415)
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
            return self._trust.vouch(peer, relayed), peer
        return peer, ""

    def _wrap(self, method: str, handler: Handler) -> Handler:
        inner: Any = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary
        ) or handler.stream_stream
        short = method.rsplit("/", 1)[-1]
        accounted = not method.startswith(_PASS_THROUGH_PREFIXES)
        decode = _decoder(handler.request_deserializer)
        streaming_request = bool(handler.request_streaming)
        streaming_response = bool(handler.response_streaming)
        serialize = handler.response_serializer
        access = self._access
        # a public method of the citizen port: no identity, so capped node-wide and given
        # the short message deadline (its request is empty or tiny)
        public = self._identity is not None and method in self._public
        timeout = self._public_timeout if public else self._request_timeout

        async def guarded(requests: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            peer, via = None, ""
            key = f"citizen:{context.peer()}"
            token = _CALLER.set(None)
            counted = public_counted = False
            code, reason = "OK", ""
            try:
                if public:
                    if self._max_public is not None and self._public_inflight >= self._max_public:
                        raise ResourceExhaustedError(
                            TOO_MANY_PUBLIC_CALLS,
                            "too many calls without an identity on this node; retry later",
                        )
                    self._public_inflight += 1
                    public_counted = True
                if accounted:
                    peer, via = self._admit(method, short, context)
                    _CALLER.set(peer)
                    # Citizens have no certificate: their calls are limited per connection
                    # (client address), so a few slow callers cannot starve everyone else.
                    key = peer or key
                    remaining = context.time_remaining()
                    if remaining is not None and remaining <= 0:
                        raise DeadlineError("DEADLINE_EXCEEDED", "deadline passed before handling")
                    if self._inflight.get(key, 0) >= self._limits.concurrency_for(key):
                        raise ResourceExhaustedError(
                            "TOO_MANY_CONCURRENT_CALLS",
                            "too many concurrent calls from this peer; retry later",
                        )
                    self._inflight[key] = self._inflight.get(key, 0) + 1
                    counted = True
                limit = self._limits.message_bytes_for(key)
                if streaming_request:
                    request = self._stream(context, decode, limit, timeout)
                else:
                    request = await self._message(context, decode, limit, timeout)
                    if request is EOF:
                        raise InvalidArgumentError(
                            MALFORMED_REQUEST,
                            "the call carried no request message",
                            field="request",
                        )
                if accounted and self._throttle is not None and self._throttle.applies_to(short):
                    self._throttle.check(peer or key)
                result = inner(request, context)
                if streaming_response:  # health Watch, reflection: written as they come
                    if hasattr(result, "__aiter__"):
                        async for response in result:
                            await context.write(response)
                    else:
                        await result
                    return None
                response = await result
                return serialize(response) if serialize is not None else response
            except aio.AbortError:
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                reason = _reason_in(context.trailing_metadata())
                raise
            except Exception as exc:
                mapped = map_error(exc)
                code, reason = mapped.status.name, mapped.reason
                if not isinstance(exc, NodeError) and mapped.reason == "INTERNAL":
                    log_internal(exc, short, peer or "citizen")
                await context.abort(
                    mapped.status, mapped.message, trailing_metadata=mapped.metadata
                )
                raise  # pragma: no cover - abort always raises
            finally:
                if public_counted:
                    self._public_inflight -= 1
                if counted:
                    left = self._inflight[key] - 1
                    if left:
                        self._inflight[key] = left
                    else:
                        del self._inflight[key]  # one entry per live caller, not per address seen
                _CALLER.reset(token)
                _CITIZEN.set(None)
                if accounted:  # no client addresses in logs; written after the response
                    access.record(
                        short,
                        peer=peer or "citizen",
                        via=via,
                        code=code,
                        reason=reason,
                        seconds=time.perf_counter() - started,
                    )

        if streaming_response:
            return grpc.stream_stream_rpc_method_handler(
                guarded, response_serializer=handler.response_serializer
            )
        return grpc.stream_unary_rpc_method_handler(guarded)

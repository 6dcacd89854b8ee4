"""Structured logging (JSON lines) and Prometheus metrics for one node.

Invariants: log records are single JSON objects per line; request payloads are
never logged; as a second line of defence every line is passed through
:func:`redact`, which replaces anything shaped like a GB 11643 ID number
(17 digits + digit/X) with ``[id-redacted]`` before writing.  Each node owns
its own metrics registry, so several nodes in one process (tests, the demo) do
not collide.

The per-RPC access line and request metrics (:class:`AccessLog`) are recorded
by the guard when a call ends and written right after the handler has returned
(``loop.call_soon``: after gRPC has started sending the response), several
calls' lines in one write.  The line is the exact text :class:`JsonFormatter`
would produce for the same record (same keys, order, redaction); when the
``huxin.node`` INFO record would reach exactly one handler made by
:func:`configure_logging` it is written to that handler's stream directly (no
``LogRecord``), otherwise it goes through :mod:`logging` as before.  Only the
access line and its metrics are deferred this way — never the transparency
log, which is committed before any response (docs/adr/0313).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import weakref
from json.encoder import encode_basestring
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["AccessLog", "JsonFormatter", "Metrics", "configure_logging", "log_event"]

_ID_SHAPE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
_DIGIT_RUN = re.compile(r"[0-9]{17}")  # every ID-shaped match contains one: a cheap pre-check
# json.dumps(..., ensure_ascii=False, default=str) with its encoder built once
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)

LOGGER = logging.getLogger("huxin.node")
_OURS: weakref.WeakSet[logging.Handler] = weakref.WeakSet()  # made by configure_logging


def redact(text: str) -> str:
    if _DIGIT_RUN.search(text) is None:
        return text
    return _ID_SHAPE.sub("[id-redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, msg and the record's ``fields``
    (``pid`` tells the primary's lines from its peer-port workers', ADR 0312)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return redact(_ENCODER.encode(out))


def configure_logging(path: str | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send ``huxin.*`` logs as JSON lines to ``path`` (or stderr)."""
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    )
    handler.setFormatter(JsonFormatter())
    _OURS.add(handler)
    root = logging.getLogger("huxin")
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def reopen_log_files() -> int:
    """Reopen every log file :func:`configure_logging` opened, e.g. after logrotate
    moved it away (SIGHUP); returns how many.  Under the handler's lock, so the
    access log's direct writes never see a closed stream."""
    reopened = 0
    for handler in list(_OURS):
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                old = handler.setStream(handler._open())
                if old is not None:
                    old.close()
            finally:
                handler.release()
            reopened += 1
    return reopened


def log_event(msg: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, msg, extra={"fields": fields})


def _sole_json_handler() -> logging.StreamHandler[Any] | None:
    """The one handler an INFO record of ``huxin.node`` would reach, if it is a plain
    JSON-lines handler made by :func:`configure_logging`; else None (use logging)."""
    logger: logging.Logger | None = LOGGER
    if LOGGER.disabled or LOGGER.filters or not LOGGER.isEnabledFor(logging.INFO):
        return None
    found: list[logging.Handler] = []
    while logger is not None:
        found += logger.handlers
        if not logger.propagate:
            break
        logger = logger.parent
    if len(found) != 1:
        return None
    handler = found[0]
    if (
        handler not in _OURS
        or not isinstance(handler, logging.StreamHandler)
        or handler.filters
        or handler.level > logging.INFO
        or type(handler.formatter) is not JsonFormatter
    ):
        return None
    return handler


def access_line(
    created: float,
    method: str,
    *,
    pid: int,
    peer: str,
    via: str,
    code: str,
    reason: str,
    ms: float,
) -> str:
    """The access line exactly as :class:`JsonFormatter` formats the record
    ``log_event("rpc", method=…, peer=…, via=…, code=…, reason=…, ms=…)`` created at
    ``created`` by process ``pid`` (ID-shaped text redacted)."""
    return redact(
        f'{{"ts": {round(created, 3)!r}, "level": "info", "logger": "huxin.node", '
        f'"pid": {pid:d}, "msg": "rpc", "method": {encode_basestring(method)}, '
        f'"peer": {encode_basestring(peer)}, "via": {encode_basestring(via)}, '
        f'"code": {encode_basestring(code)}, "reason": {encode_basestring(reason)}, '
        f'"ms": {ms!r}}}'
    )


_Call = tuple[float, str, str, str, str, str, float]


class AccessLog:
    """Per-RPC access lines and request metrics, written just after the response.

    :meth:`record` only queues the call; the first call queued in a loop iteration
    schedules :meth:`flush` with ``loop.call_soon``.  Outside a running loop it
    flushes at once.  ``flush`` also runs at shutdown (nothing queued is dropped
    by a clean stop).
    """

    __slots__ = ("_metrics", "_pending", "_scheduled_on")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._pending: list[_Call] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None  # loop a flush waits on

    def record(
        self, method: str, *, peer: str, via: str, code: str, reason: str, seconds: float
    ) -> None:
        """Queue one finished call (``seconds`` = its duration)."""
        self._pending.append((time.time(), method, peer, via, code, reason, seconds))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._scheduled_on is not loop:  # none pending, or pending on a loop now gone
            self._scheduled_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Count and write every queued call (at most one write and flush)."""
        self._scheduled_on = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        observe = self._metrics.observe_seconds
        for _, method, _, _, code, reason, seconds in pending:
            observe(method, code, reason, seconds)
        handler = _sole_json_handler()
        if handler is None:
            for _, method, peer, via, code, reason, seconds in pending:
                log_event(
                    "rpc",
                    method=method,
                    peer=peer,
                    via=via,
                    code=code,
                    reason=reason,
                    ms=round(seconds * 1000, 2),
                )
            return
        pid = os.getpid()
        text = "".join(
            access_line(
                created,
                method,
                pid=pid,
                peer=peer,
                via=via,
                code=code,
                reason=reason,
                ms=round(seconds * 1000, 2),
            )
            + handler.terminator
            for created, method, peer, via, code, reason, seconds in pending
        )
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:  # like StreamHandler.emit: report through the handler, never raise
            handler.handleError(
                logging.LogRecord("huxin.node", logging.INFO, "", 0, "rpc", (), None)
            )
        finally:
            handler.release()


class Metrics:
    """Requests, errors by reason, latencies, attestations issued (own registry)."""

    def __init__(self, region: str) -> None:
        self.registry = CollectorRegistry()
        self.region = region
        self.requests = Counter(
            "huxin_requests",
            "gRPC requests handled",
            ["method", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "huxin_errors", "gRPC errors by stable reason", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "huxin_request_seconds",
            "gRPC request latency",
            ["method"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.attestations = Counter(
            "huxin_attestations_issued",
            "attestations issued",
            ["audience"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "huxin_attestation_refusals",
            "attestation requests refused",
            ["reason"],
            registry=self.registry,
        )
        self._server: Any = None
        # label children, looked up once per label value (labels() takes a lock)
        self._requests: dict[tuple[str, str], Any] = {}
        self._errors: dict[str, Any] = {}
        self._latency: dict[str, Any] = {}

    def observe(self, method: str, code: str, reason: str, started: float) -> None:
        self.observe_seconds(method, code, reason, time.perf_counter() - started)

    def observe_seconds(self, method: str, code: str, reason: str, seconds: float) -> None:
        """Count one request and its latency (``seconds``) under ``method`` and ``code``."""
        requests = self._requests.get((method, code))
        if requests is None:
            requests = self._requests[(method, code)] = self.requests.labels(method, code)
        requests.inc()
        if reason:
            errors = self._errors.get(reason)
            if errors is None:
                errors = self._errors[reason] = self.errors.labels(reason)
            errors.inc()
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = self.latency.labels(method)
        latency.observe(seconds)

    def serve(self, address: str) -> int:
        """Start the HTTP endpoint on ``host:port`` (port 0 = any); return the port."""
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host or "127.0.0.1", registry=self.registry
        )
        self._server = server
        return int(server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

"""Structured logging (JSON lines) and Prometheus metrics for one node.

Invariants: log records are single JSON objects per line; request payloads are
never logged; as a second line of defence :class:`JsonFormatter` replaces
anything shaped like a GB 11643 ID number (17 digits + digit/X) with
``[id-redacted]`` before writing.  Each node owns its own metrics registry, so
several nodes in one process (tests, the demo) do not collide.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["JsonFormatter", "Metrics", "configure_logging", "log_event"]

_ID_SHAPE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")

LOGGER = logging.getLogger("huxin.node")


def redact(text: str) -> str:
    return _ID_SHAPE.sub("[id-redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return redact(json.dumps(out, ensure_ascii=False, default=str))


def configure_logging(path: str | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send ``huxin.*`` logs as JSON lines to ``path`` (or stderr)."""
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    )
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("huxin")
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def log_event(msg: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, msg, extra={"fields": fields})


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

    def observe(self, method: str, code: str, reason: str, started: float) -> None:
        self.requests.labels(method, code).inc()
        if reason:
            self.errors.labels(reason).inc()
        self.latency.labels(method).observe(time.perf_counter() - started)

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

"""Structured logs (JSON lines, ID-shaped strings redacted) and per-node metrics."""

from __future__ import annotations

import json
import logging
import time

from prometheus_client import generate_latest

from node._observe import JsonFormatter, Metrics, redact


def test_json_lines_with_fields() -> None:
    rec = logging.LogRecord("huxin.node", logging.INFO, __file__, 1, "rpc", None, None)
    rec.fields = {"method": "GetMyScore", "ms": 1.5}  # type: ignore[attr-defined]
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["msg"] == "rpc"
    assert doc["method"] == "GetMyScore"
    assert doc["level"] == "info"


def test_id_shaped_values_are_redacted() -> None:
    assert redact("x 11010119900307451X y") == "x [id-redacted] y"
    assert redact("12345") == "12345"
    rec = logging.LogRecord(
        "huxin", logging.INFO, __file__, 1, "id %s", ("110101199003074514",), None
    )
    assert "110101199003074514" not in JsonFormatter().format(rec)


def test_metrics_have_own_registry_and_count() -> None:
    a, b = Metrics("heihe"), Metrics("hainan")
    a.observe("RequestAttestation", "OK", "", time.perf_counter())
    a.observe("RequestAttestation", "PERMISSION_DENIED", "PEER_NOT_TRUSTED", time.perf_counter())
    a.attestations.labels("hainan").inc()
    text = generate_latest(a.registry).decode()
    assert 'huxin_requests_total{code="OK",method="RequestAttestation"} 1.0' in text
    assert 'huxin_errors_total{reason="PEER_NOT_TRUSTED"} 1.0' in text
    assert "huxin_attestations_issued_total" in text
    assert "PEER_NOT_TRUSTED" not in generate_latest(b.registry).decode()


def test_metrics_endpoint_serves(tmp_path: object) -> None:
    import urllib.request

    m = Metrics("heihe")
    port = m.serve("127.0.0.1:0")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"huxin_request_seconds" in body
    finally:
        m.stop()

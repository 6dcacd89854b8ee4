"""Structured logs (JSON lines, ID-shaped strings redacted) and per-node metrics;
the per-RPC access line written after the response (docs/adr/0313)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from node.core._observe import (
    AccessLog,
    JsonFormatter,
    Metrics,
    access_line,
    configure_logging,
    redact,
)


def test_json_lines_with_fields() -> None:
    rec = logging.LogRecord("huxin.node", logging.INFO, __file__, 1, "rpc", None, None)
    rec.fields = {"method": "GetMyScore", "ms": 1.5}  # type: ignore[attr-defined]
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["msg"] == "rpc"
    assert doc["method"] == "GetMyScore"
    assert doc["level"] == "info"
    assert doc["pid"] == os.getpid()  # which process of a node with workers wrote it


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


# -- the per-RPC access line (docs/adr/0313) ----------------------------------------

ID = "11010119900307451X"
_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "hainan", ID, f"x{ID}y", "1" * 18, "1" * 19, "\x19" + "1" * 14]),
)


def _formatted(created: float, **fields: object) -> str:
    rec = logging.LogRecord("huxin.node", logging.INFO, __file__, 1, "rpc", None, None)
    rec.created = created
    rec.fields = fields  # type: ignore[attr-defined]
    return JsonFormatter().format(rec)


@settings(max_examples=150, deadline=None)
@given(
    created=st.floats(0, 4e9, allow_nan=False),
    method=_text,
    peer=_text,
    via=_text,
    code=_text,
    reason=_text,
    ms=st.floats(0, 1e7, allow_nan=False).map(lambda x: round(x, 2)),
)
def test_access_line_is_the_formatters_line(
    created: float, method: str, peer: str, via: str, code: str, reason: str, ms: float
) -> None:
    """REQ: N-observability — same JSON text (keys, order, escapes, redaction) as logging."""
    fields = {"method": method, "peer": peer, "via": via, "code": code, "reason": reason}
    line = access_line(
        created,
        method,
        pid=os.getpid(),
        ms=ms,
        **{k: v for k, v in fields.items() if k != "method"},
    )
    assert line == _formatted(created, **fields, ms=ms)
    assert ID not in line


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Path]:
    """configure_logging to a file, with ``huxin`` not propagating to pytest's root
    handlers, so the node's handler is the only one (as in ``huxin serve``)."""
    path = tmp_path / "node.log"
    huxin = logging.getLogger("huxin")
    level, propagate = huxin.level, huxin.propagate
    handler = configure_logging(str(path))
    huxin.propagate = False
    try:
        yield path
    finally:
        huxin.removeHandler(handler)
        handler.close()
        huxin.setLevel(level)
        huxin.propagate = propagate


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


async def test_lines_are_written_after_the_current_step_in_one_write(json_log: Path) -> None:
    metrics = Metrics("heihe")
    access = AccessLog(metrics)
    access.record("RequestAttestation", peer="hainan", via="", code="OK", reason="", seconds=0.0012)
    access.record(
        "RequestAttestation",
        peer=ID,
        via="hub",
        code="PERMISSION_DENIED",
        reason="PEER_NOT_TRUSTED",
        seconds=0.5,
    )
    assert json_log.read_text() == ""  # nothing yet: the handler's response goes first
    await asyncio.sleep(0)
    lines = _lines(json_log)
    assert [(x["msg"], x["peer"], x["code"], x["ms"]) for x in lines] == [
        ("rpc", "hainan", "OK", 1.2),
        ("rpc", "[id-redacted]", "PERMISSION_DENIED", 500.0),
    ]
    assert lines[1]["via"] == "hub" and lines[1]["reason"] == "PEER_NOT_TRUSTED"
    text = generate_latest(metrics.registry).decode()
    assert 'huxin_requests_total{code="OK",method="RequestAttestation"} 1.0' in text
    assert 'huxin_errors_total{reason="PEER_NOT_TRUSTED"} 1.0' in text
    assert 'huxin_request_seconds_count{method="RequestAttestation"} 2.0' in text


def test_outside_a_loop_the_line_is_written_at_once(json_log: Path) -> None:
    AccessLog(Metrics("heihe")).record(
        "GetKeySet", peer="citizen", via="", code="OK", reason="", seconds=0.0
    )
    assert [x["method"] for x in _lines(json_log)] == ["GetKeySet"]


async def test_a_flush_pending_on_a_loop_that_is_gone_is_rescheduled(json_log: Path) -> None:
    access = AccessLog(Metrics("heihe"))
    dead = asyncio.new_event_loop()
    dead.close()
    access._scheduled_on = dead  # as if a previous loop stopped before its flush ran
    access.record("GetKeySet", peer="hainan", via="", code="OK", reason="", seconds=0.0)
    await asyncio.sleep(0)
    assert len(_lines(json_log)) == 1


async def test_other_handlers_get_the_line_through_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With any other handler in the way (here pytest's), lines go through logging."""
    access = AccessLog(Metrics("heihe"))
    with caplog.at_level(logging.INFO, logger="huxin"):
        access.record("GetKeySet", peer=ID, via="", code="OK", reason="", seconds=0.25)
        await asyncio.sleep(0)
    rpc = [r for r in caplog.records if r.getMessage() == "rpc"]
    assert len(rpc) == 1
    assert rpc[0].fields == {  # type: ignore[attr-defined]
        "method": "GetKeySet",
        "peer": ID,
        "via": "",
        "code": "OK",
        "reason": "",
        "ms": 250.0,
    }
    assert ID not in JsonFormatter().format(rpc[0])


def test_observe_seconds_reuses_label_children() -> None:
    m = Metrics("heihe")
    for _ in range(3):
        m.observe_seconds("RequestAttestation", "OK", "", 0.001)
    m.observe_seconds("RequestAttestation", "NOT_FOUND", "SUBJECT_UNKNOWN", 0.001)
    text = generate_latest(m.registry).decode()
    assert 'huxin_requests_total{code="OK",method="RequestAttestation"} 3.0' in text
    assert 'huxin_requests_total{code="NOT_FOUND",method="RequestAttestation"} 1.0' in text
    assert 'huxin_errors_total{reason="SUBJECT_UNKNOWN"} 1.0' in text
    assert 'huxin_request_seconds_count{method="RequestAttestation"} 4.0' in text

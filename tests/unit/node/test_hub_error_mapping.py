"""The hub/outbox/push/snapshot/batch error families reach callers with a proper
gRPC status and their stable code (node/rpc/_status.py ``map_error``), never a bare INTERNAL."""

from __future__ import annotations

import sqlite3

import grpc
import pytest

from node.core._errors import FIELD_KEY, REASON_KEY, NodeError
from node.federation._push import PushError
from node.hub._registry import RegistryError
from node.monthly._batch import BatchError, period_as_of
from node.monthly._snapshots import SnapshotError
from node.rpc._status import map_error
from node.store import connect
from node.store._outbox import OutboxError, append_sync

S = grpc.StatusCode


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (OutboxError("UNKNOWN_EVENT_KIND", "m"), S.INVALID_ARGUMENT),
        (OutboxError("EVENT_CONFLICT", "m"), S.FAILED_PRECONDITION),
        (OutboxError("SEALED_ID_UNREADABLE", "m"), S.INTERNAL),
        (PushError("HUB_KEY_REQUIRED", "m", field="hub.hub_key"), S.FAILED_PRECONDITION),
        (PushError("BAD_RECEIPT", "m", field="content_sha256"), S.FAILED_PRECONDITION),
        (PushError("HUB_CURSOR_STUCK", "m"), S.UNAVAILABLE),
        (RegistryError("INVALID_REGISTRATION", "m"), S.INVALID_ARGUMENT),
        (RegistryError("ROOT_KEY_CHANGED", "m"), S.FAILED_PRECONDITION),
        (SnapshotError("RUN_NOT_FOUND", "m"), S.NOT_FOUND),
        (SnapshotError("RUN_NOT_FINISHED", "m"), S.FAILED_PRECONDITION),
        (SnapshotError("INVALID_BATCH_SIZE", "m"), S.INVALID_ARGUMENT),
        (BatchError("INVALID_PERIOD", "m"), S.INVALID_ARGUMENT),
        (BatchError("UNKNOWN_CATEGORY", "m"), S.FAILED_PRECONDITION),
    ],
    ids=[
        "outbox-kind", "outbox-conflict", "outbox-sealed", "push-key", "push-receipt",
        "push-stuck", "registry-invalid", "registry-root", "snapshot-no-run",
        "snapshot-unfinished", "snapshot-size", "batch-period", "batch-category",
    ],
)  # fmt: skip
def test_family_maps_to_status_keeping_code(exc: NodeError, status: grpc.StatusCode) -> None:
    """A NodeError subclass: status by code, the stable code as reason."""
    assert isinstance(exc, NodeError)
    mapped = map_error(exc)
    assert (mapped.status, mapped.reason) == (status, exc.code)
    assert (REASON_KEY, exc.code) in mapped.metadata
    if exc.field:
        assert (FIELD_KEY, exc.field) in mapped.metadata


def test_real_outbox_conflict_keeps_its_code(tmp_path: object) -> None:
    """An OutboxError raised by the real outbox (same id, other content) is mapped with
    its code, not to a bare INTERNAL."""
    conn: sqlite3.Connection = connect(tmp_path / "n.db")  # type: ignore[operator]
    try:
        conn.execute("BEGIN")
        append_sync(conn, "status_list", "status/1", b"a", 1)
        with pytest.raises(OutboxError) as err:
            append_sync(conn, "status_list", "status/1", b"b", 2)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    mapped = map_error(err.value)
    assert (mapped.status, mapped.reason) == (S.FAILED_PRECONDITION, "EVENT_CONFLICT")


def test_real_batch_period_error_keeps_its_code() -> None:
    with pytest.raises(BatchError) as err:
        period_as_of("2026-13")
    mapped = map_error(err.value)
    assert (mapped.status, mapped.reason) == (S.INVALID_ARGUMENT, "INVALID_PERIOD")

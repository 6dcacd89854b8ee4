"""The one table from the error tree to gRPC status (node/rpc/_status.py), read against
the source: every error class and every family reason raised in node/ has its row.

Issue 17, "one error tree, one map to gRPC status": domain errors carry a reason and
no status, so a reason without a row would reach its class's default unnoticed.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from keys import REASON_CODES
from node.core._errors import (
    CodedNodeError,
    FailedPreconditionError,
    InvalidArgumentError,
    NodeError,
    RelayedError,
    UnimplementedError,
)
from node.hub._registry import RegistryError
from node.monthly._batch import BatchError
from node.monthly._snapshots import SnapshotError
from node.rpc._status import CLASS_STATUS, FAMILIES, REASON_STATUS, map_error, status_of
from node.store._outbox import OutboxError

ROOT = Path(__file__).resolve().parents[3]
NODE = ROOT / "node"
S = grpc.StatusCode


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(NODE.rglob("*.py")):
        if "pb" in path.relative_to(NODE).parts[:1]:
            continue  # generated messages raise nothing of ours
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        yield module.removesuffix(".__init__"), ast.parse(path.read_text(encoding="utf-8"))


def _tree_classes() -> dict[str, type[NodeError]]:
    """Every class of the error tree defined in node/, by name (read from the source,
    then imported so that the test sees the very class objects the table holds)."""
    names: dict[str, str] = {"NodeError": "node.core._errors"}
    grew = True
    while grew:  # the walk may meet a subclass first and its base in a later file
        grew = False
        for module, tree in _sources():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names:
                    bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                    if bases & names.keys():
                        names[node.name] = module
                        grew = True
    found = {name: getattr(importlib.import_module(mod), name) for name, mod in names.items()}
    assert all(issubclass(cls, NodeError) for cls in found.values())
    return found


TREE = _tree_classes()


def _raised() -> set[tuple[str, str, str]]:
    """(module, class name, reason) of every ``SomeError("REASON", ...)`` in node/."""
    out = set()
    for module, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if name in TREE and isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.add((module, name, first.value))
    return out


RAISED = _raised()


def test_the_source_is_read() -> None:
    """Issue 17: the collection finds the tree and its reasons (an empty walk proves nothing)."""
    assert {"InvalidArgumentError", "BatchError", "OutboxError", "PushError"} <= TREE.keys()
    assert ("node.store._outbox", "OutboxError", "EVENT_CONFLICT") in RAISED
    assert len({reason for _, _, reason in RAISED}) > 100


@pytest.mark.parametrize("name", sorted(TREE))
def test_every_error_class_has_its_own_row(name: str) -> None:
    """Issue 17: every class of the error tree in node/ is a row of CLASS_STATUS itself,
    not by inheriting NodeError's INTERNAL by accident (RelayedError carries its own
    status; CodedNodeError is only the base of the families)."""
    cls = TREE[name]
    if cls in (RelayedError, CodedNodeError):
        return
    assert cls in CLASS_STATUS


@pytest.mark.parametrize(
    ("module", "name", "reason"),
    sorted(r for r in RAISED if issubclass(TREE[r[1]], FAMILIES)),
)
def test_every_family_reason_raised_has_a_row(module: str, name: str, reason: str) -> None:
    """Issue 17: a reason raised by a family (one class, many reasons) has its own row in
    REASON_STATUS, so its status is chosen, never the family's default by accident."""
    assert reason in REASON_STATUS, f"{module}: {name}({reason!r}) has no row"


def test_no_reason_row_is_stale() -> None:
    """Issue 17: every row of REASON_STATUS is a reason some family raises."""
    raised = {reason for _, name, reason in RAISED if issubclass(TREE[name], FAMILIES)}
    assert set(REASON_STATUS) <= raised


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        pytest.param(InvalidArgumentError("UNKNOWN_CATEGORY", "m"), S.INVALID_ARGUMENT, id="class-wins-over-a-family-row"),
        pytest.param(BatchError("UNKNOWN_CATEGORY", "m"), S.FAILED_PRECONDITION, id="family-row"),
        pytest.param(FailedPreconditionError("EVENT_CONFLICT", "m"), S.FAILED_PRECONDITION, id="same-reason-other-class"),
        pytest.param(OutboxError("EVENT_CONFLICT", "m"), S.FAILED_PRECONDITION, id="outbox-row"),
        pytest.param(RegistryError("KEY_NOT_VALID", "m"), S.INVALID_ARGUMENT, id="family-default-for-a-keys-code"),
        pytest.param(SnapshotError("SEALED_ID_UNREADABLE", "m"), S.INTERNAL, id="snapshot-sealed"),
        pytest.param(UnimplementedError("ROUTING_UNAVAILABLE", "m"), S.UNIMPLEMENTED, id="unimplemented"),
        pytest.param(RelayedError("NOT_FOUND", "SUBJECT_UNKNOWN", "m"), S.NOT_FOUND, id="relayed-carries-its-own"),
        pytest.param(NodeError("WHATEVER", "m"), S.INTERNAL, id="bare-node-error"),
    ],
)  # fmt: skip
def test_status_follows_the_order_of_the_table(exc: NodeError, status: grpc.StatusCode) -> None:
    """Issue 17: relayed status, then a family's reason row, then the class's row."""
    assert status_of(exc) == status
    assert map_error(exc).status == status
    assert map_error(exc).reason == exc.code


def test_a_keys_code_never_meets_a_family_row() -> None:
    """Issue 17: the hub registry re-raises a keys error's code as a RegistryError, which
    must keep the registry's default (INVALID_ARGUMENT); a keys code that were also a row
    of REASON_STATUS would take that row's status instead."""
    assert not REASON_CODES & REASON_STATUS.keys()
    assert status_of(RegistryError("BAD_SIGNATURE", "m")) == S.INVALID_ARGUMENT

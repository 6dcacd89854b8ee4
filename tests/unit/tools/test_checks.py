"""The project's own checks can fail: boundary violations and stale generated code are caught."""

from __future__ import annotations

import pytest

from tools import check_imports


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("import grpc\n", "'grpc'", id="grpc"),
        pytest.param("from grpc import aio\n", "'grpc'", id="from-grpc"),
        pytest.param("import aiosqlite as db\n", "'aiosqlite'", id="aiosqlite"),
        pytest.param("import sqlite3\n", "'sqlite3'", id="sqlite3"),
        pytest.param("from node import _cli\n", "only node.pb", id="node-internals"),
        pytest.param("import node._storage\n", "only node.pb", id="node-storage"),
        pytest.param("def f():\n    import grpc_health.v1\n", "'grpc_health'", id="nested-import"),
    ],
)
def test_violations_are_reported(source: str, expected: str) -> None:
    problems = check_imports.check_source(source, "keys/_x.py")
    assert len(problems) == 1
    assert expected in problems[0]
    assert problems[0].startswith("keys/_x.py:")


@pytest.mark.parametrize(
    "source",
    [
        "from node.pb.v1 import attestation_pb2\n",
        "import node.pb.v1.scoring_pb2\n",
        "import hashlib\nfrom . import _merkle\n",
        "import nacl.signing\n",
    ],
)
def test_allowed_imports(source: str) -> None:
    assert check_imports.check_source(source, "keys/_x.py") == []


def test_repository_passes() -> None:
    assert check_imports.main() == 0

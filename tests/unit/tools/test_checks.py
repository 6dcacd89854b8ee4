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
        pytest.param("import node.store\n", "only node.pb", id="node-storage"),
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


@pytest.mark.parametrize(
    ("filename", "source", "expected"),
    [
        pytest.param(
            "node/core/_x.py",
            "from node.store import connect\n",
            "may import only no room",
            id="core-imports-store",
        ),
        pytest.param(
            "node/store/_x.py",
            "from node.rpc._context import NodeContext\n",
            "may import only ['core']",
            id="store-imports-rpc",
        ),
        pytest.param(
            "node/exchange/_x.py",
            "from node.cli._main import CliError\n",
            "node.cli is imported only by",
            id="product-imports-cli",
        ),
        pytest.param(
            "node/rpc/_x.py",
            "import node.demo._testbed\n",
            "node.demo is imported only by",
            id="product-imports-demo",
        ),
        pytest.param(
            "node/rights/_x.py",
            "from node.synthetic import _population\n",
            "node.synthetic is imported only by",
            id="product-imports-synthetic",
        ),
        pytest.param(
            "node/store/_x.py",
            "from aiosqlite.core import _connection_worker_thread\n",
            "a private name",
            id="private-name-of-a-library",
        ),
    ],
)
def test_room_walls_are_reported(filename: str, source: str, expected: str) -> None:
    """Issue 17: the rooms of node keep their walls (docs/adr/0600)."""
    problems = check_imports.check_node_source(source, filename)
    assert len(problems) == 1
    assert expected in problems[0]
    assert problems[0].startswith(f"{filename}:1:")


@pytest.mark.parametrize(
    ("filename", "source"),
    [
        pytest.param(
            "node/store/_x.py", "from node.core._errors import NodeError\n", id="store-core"
        ),
        pytest.param("node/cli/_x.py", "from node.demo import _main\n", id="cli-demo"),
        pytest.param(
            "node/model/_x.py", "from node.synthetic import _population\n", id="model-synthetic"
        ),
        pytest.param("node/rpc/_x.py", "from node.pb.v1 import node_pb2\n", id="generated"),
        pytest.param("node/core/_x.py", "from node.core._clock import Clock\n", id="own-room"),
        pytest.param("node/rpc/_x.py", "from grpc_health.v1.health import aio\n", id="public-name"),
    ],
)
def test_room_walls_allow(filename: str, source: str) -> None:
    assert check_imports.check_node_source(source, filename) == []

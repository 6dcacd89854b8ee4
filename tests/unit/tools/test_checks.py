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
        pytest.param("from node import _cli\n", "no part of node", id="node-internals"),
        pytest.param("import node.store\n", "no part of node", id="node-storage"),
        pytest.param(
            "from node.pb.v1 import node_pb2\n", "no part of node", id="node-generated-messages"
        ),
        pytest.param("import node\n", "no part of node", id="node-itself"),
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
        pytest.param("from keys.pb.v1 import attestation_pb2\n", id="keys-pb"),
        pytest.param("import keys.pb.v1.catalogue_pb2\n", id="keys-pb-dotted"),
        pytest.param("import hashlib\nfrom . import _merkle\n", id="stdlib-and-relative"),
        pytest.param("import nacl.signing\n", id="third-party"),
    ],
)
def test_allowed_imports(source: str) -> None:
    assert check_imports.check_source(source, "keys/_x.py") == []


@pytest.mark.parametrize(
    "filename",
    [pytest.param("scoring/_x.py", id="scoring"), pytest.param("mapping/_x.py", id="mapping")],
)
def test_scoring_and_mapping_may_import_keys_pb_but_not_node_pb(filename: str) -> None:
    """Issue 17: the pure core stands alone; scoring and mapping reach the generated
    messages through keys.pb, never node.pb (docs/adr/0604)."""
    assert (
        check_imports.check_source("from keys.pb.v1 import attestation_pb2 as pb\n", filename) == []
    )
    problems = check_imports.check_source("from node.pb.v1 import attestation_pb2\n", filename)
    assert len(problems) == 1
    assert "no part of node" in problems[0]


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        pytest.param("from google.protobuf import descriptor as _d\n", True, id="protobuf"),
        pytest.param("from keys.pb.v1 import attestation_pb2\n", True, id="own-package"),
        pytest.param("import grpc\n", False, id="grpc"),
        pytest.param("from node.pb.v1 import node_pb2\n", False, id="node-pb"),
        pytest.param("from keys import _envelope\n", False, id="rest-of-keys"),
        pytest.param("import scoring\n", False, id="scoring"),
    ],
)
def test_keys_pb_depends_on_nothing_else(source: str, allowed: bool) -> None:
    """Issue 17: the generated keys.pb imports only protobuf and itself."""
    problems = check_imports.check_source(source, "keys/pb/v1/x_pb2.py")
    assert (problems == []) is allowed
    if not allowed:
        assert len(problems) == 1
        assert problems[0].startswith("keys/pb/v1/x_pb2.py:1:")


def test_keys_pb_rule_applies_to_absolute_paths_in_the_repository() -> None:
    """Issue 17: main() passes absolute paths; the keys.pb rule still holds for them."""
    path = check_imports.ROOT / "keys" / "pb" / "v1" / "x_pb2.py"
    assert check_imports.check_source("from keys import _envelope\n", str(path)) != []
    assert check_imports.check_source("from keys import _envelope\n", "keys/_x.py") == []


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


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            'conn.execute("SELECT a FROM t WHERE b = ?", (1,))\n', "SELECT a", id="select"
        ),
        pytest.param('SQL = "INSERT OR IGNORE INTO t (a) VALUES (?)"\n', "INSERT OR", id="insert"),
        pytest.param('q = ("UPDATE t SET a = ?"\n     " WHERE b = ?")\n', "UPDATE t", id="joined"),
        pytest.param('conn.execute(f"DELETE FROM {table} WHERE a = ?")\n', "DELETE", id="f-string"),
        pytest.param('conn.execute("BEGIN IMMEDIATE")\n', "BEGIN IMMEDIATE", id="begin"),
        pytest.param('conn.execute("COMMIT")\n', "COMMIT", id="bare-commit-executed"),
        pytest.param('c.execute("PRAGMA synchronous = OFF")\n', "PRAGMA", id="pragma"),
        pytest.param('c.execute("ATTACH DATABASE ? AS " + a)\n', "ATTACH", id="attach"),
        pytest.param('S = "CREATE TABLE IF NOT EXISTS t (a)"\n', "CREATE TABLE", id="create"),
        pytest.param('W = "WITH x AS (SELECT 1) SELECT * FROM x"\n', "WITH x", id="cte"),
    ],
)
def test_sql_outside_the_store_is_reported(source: str, expected: str) -> None:
    """issue 17: no module of node outside node/store issues SQL."""
    problems = check_imports.check_node_source(source, "node/cli/_x.py")
    assert len(problems) == 1
    assert problems[0].startswith("node/cli/_x.py:")
    assert "SQL outside node.store" in problems[0]
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("filename", "source"),
    [
        pytest.param("node/store/_x.py", 'c.execute("SELECT a FROM t")\n', id="in-the-store"),
        pytest.param("node/pb/x_pb2.py", 'S = "SELECT a FROM t"\n', id="generated"),
        pytest.param(
            "node/cli/_x.py", 'p.add_argument("--seed", help="with --synthetic")\n', id="help"
        ),
        pytest.param("node/cli/_x.py", 'H = "create a root key and a key set"\n', id="prose"),
        pytest.param("node/cli/_x.py", 'H = "replace a STOPPED node\'s database"\n', id="replace"),
        pytest.param(
            "node/cli/_x.py", 'def f():\n    """SELECT is not run here."""\n', id="docstring"
        ),
        pytest.param("node/cli/_x.py", 'def f():\n    return "ROLLBACK"\n', id="reason-code"),
        pytest.param("node/cli/_x.py", 'print(f"signed {a} with key {b}")\n', id="message"),
    ],
)
def test_sql_check_allows(filename: str, source: str) -> None:
    """issue 17: SQL in the store, and prose or reason codes elsewhere, pass."""
    assert check_imports.check_node_source(source, filename) == []


@pytest.mark.parametrize(
    ("filename", "source", "refused"),
    [
        pytest.param("node/store/_x.py", "import grpc\n", True, id="store-imports-grpc"),
        pytest.param("node/store/_x.py", "from grpc import aio\n", True, id="store-imports-grpc-aio"),
        pytest.param("node/core/_x.py", "import grpc\n", True, id="core-imports-grpc"),
        pytest.param("node/store/_x.py", "from node.pb.v1 import hub_pb2\n", False, id="store-messages"),
        pytest.param("node/rpc/_x.py", "import grpc\n", False, id="rpc-imports-grpc"),
        pytest.param("node/monthly/_x.py", "from grpc import aio\n", False, id="domain-client"),
    ],
)  # fmt: skip
def test_store_and_core_import_no_transport(filename: str, source: str, refused: bool) -> None:
    """Issue 17: the error tree carries reasons and storage knows no transport, so
    ``node.core`` and ``node.store`` never import grpc; the RPC edge maps reasons to
    status codes (node.rpc._status)."""
    problems = check_imports.check_node_source(source, filename)
    if refused:
        assert len(problems) == 1 and "must not import 'grpc'" in problems[0]
    else:
        assert problems == []

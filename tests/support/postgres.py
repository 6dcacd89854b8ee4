"""A real PostgreSQL server for the test session, and a fresh database per test
(issue 18; docs/adr/0700).

* :func:`postgres_server` (session scope, one per pytest-xdist worker) starts a
  PostgreSQL 15 server with :class:`node.store._pg_local.LocalPostgres` in a
  temporary directory (unix socket and 127.0.0.1), running as the user
  ``postgres`` when the suite runs as root, and stops it at the end of the
  session.  Missing binaries FAIL the tests that need them with a clear message:
  CI installs them (``.ci/run``), so a skip would hide a broken set-up.
* :func:`pg_url` gives each test a fresh, empty database (its ``postgresql://`` URL).
* :func:`storage_url` is the URL of the backend the test is parametrized over
  (``sqlite`` or ``postgresql``; see :data:`BACKENDS`), for contract tests.
* ``--storage=postgresql`` (or ``HUXIN_TEST_STORAGE=postgresql``) makes nodes the
  harness spawns (``node.demo._testbed``) keep their state in a fresh PostgreSQL
  database each: this plugin exports the server's admin URL as
  ``HUXIN_TEST_PG_ADMIN_URL`` for the test processes and their children.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.store._pg_local import LocalPostgres, PostgresUnavailable

__all__ = [
    "BACKENDS",
    "STORAGE_ENV",
    "pg_url",
    "postgres_server",
    "pytest_addoption",
    "pytest_configure",
    "storage_url",
]

BACKENDS = ("sqlite", "postgresql")
STORAGE_ENV = "HUXIN_TEST_STORAGE"  # "sqlite" (default) or "postgresql"
ADMIN_URL_ENV = "HUXIN_TEST_PG_ADMIN_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--storage",
        choices=BACKENDS,
        default=None,
        help="backend of the nodes the harness spawns (default: $HUXIN_TEST_STORAGE or sqlite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--storage", default=None)
    if chosen:
        os.environ[STORAGE_ENV] = chosen  # inherited by xdist workers and node processes


def harness_storage() -> str:
    """The backend harness-spawned nodes use in this session."""
    return os.environ.get(STORAGE_ENV, "sqlite")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """One PostgreSQL server for this session (worker); stopped and removed at its end."""
    try:
        server = LocalPostgres().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is needed by this test: {exc}", pytrace=False)
    saved = os.environ.get(ADMIN_URL_ENV)
    os.environ[ADMIN_URL_ENV] = server.url()
    try:
        yield server
    finally:
        if saved is None:
            os.environ.pop(ADMIN_URL_ENV, None)
        else:
            os.environ[ADMIN_URL_ENV] = saved
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _harness_postgres(request: pytest.FixtureRequest) -> None:
    """With ``--storage=postgresql``, the session's server starts first (before any
    module's world is built, so the harness finds ``HUXIN_TEST_PG_ADMIN_URL``);
    otherwise nothing happens."""
    if harness_storage() == "postgresql":
        request.getfixturevalue("postgres_server")


@pytest.fixture
def pg_url(postgres_server: LocalPostgres) -> str:
    """A fresh, empty PostgreSQL database for this test."""
    return postgres_server.create_database("t")


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The storage URL of a fresh database on each backend (a contract test runs twice)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'node.db'}"
    server: LocalPostgres = request.getfixturevalue("postgres_server")
    return server.create_database("t")

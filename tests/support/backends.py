"""Run one integration module against both storage backends (issue 18).

The suites that matter for data (exchange, consent use counting, objections, hub push
with SIGKILLs, deregistration) run in ``make test`` on SQLite AND on PostgreSQL: a
module's node fixture depends on :func:`harness_backend`, a module-scoped fixture
parametrized over :data:`tests.support.postgres.BACKENDS`, so every test of the
module runs once per backend (ids ``[sqlite]`` and ``[postgresql]``) and the module's
nodes are built once per backend, not once per test.

Invariants:

* while the parameter is ``postgresql``, ``HUXIN_TEST_STORAGE=postgresql`` is set, so
  every node the harness spawns (``node.demo._testbed.place_storage``) gets a fresh
  database on the session's real PostgreSQL server (started on first use); while it
  is ``sqlite`` the variable says ``sqlite``, whatever ``--storage`` chose for the
  session, so both backends are exercised in either case;
* the variable is restored when the module's tests are done, so other modules keep
  the session's backend.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import BACKENDS, STORAGE_ENV

__all__ = ["harness_backend"]


@pytest.fixture(scope="module", params=BACKENDS)
def harness_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend the module's harness-spawned nodes use: ``sqlite``, then ``postgresql``."""
    backend = str(request.param)
    if backend == "postgresql":
        request.getfixturevalue("postgres_server")  # exports the admin URL the harness reads
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(STORAGE_ENV, backend)
        yield backend

"""What tests share: the one place a test imports a helper from (issue 17).

A test file imports from here (or from the other underscore support modules:
``tests._waiting``, ``tests.integration._edge``, ``_approvals``, ``_monthly``,
``tests.unit.node._population_fixtures``), never from another test file, so a
test file can be moved, renamed or deleted without breaking a different test.

* :mod:`tests.support.processes` — start ``huxin serve`` and wait until it is ready
  (the product-side implementation in :mod:`node.demo._testbed`, which the
  benchmarks use too), and run the ``huxin`` command in a child process or in
  this one.
* :mod:`tests.support.postgres` — a real PostgreSQL server per session and a fresh
  database per test (``pg_url``, ``postgres_server``, ``storage_url`` over both
  backends), and ``--storage=postgresql`` for the nodes the harness spawns (issue 18).
* :mod:`tests.support.config` — the smallest valid config, and ``with_storage``.
* :mod:`tests.support.refusals` — :func:`expect_refused`, the one check of a gRPC
  refusal (status, reason, field).
* :mod:`tests.support.worlds` — small worlds several test files build alike (a
  region on SQLite, a hub with its regions, a federation of processes).
"""

"""Suite-wide rules: no test depends on the machine's speed, none leaves files behind.

* Hypothesis runs without its per-example deadline and without the "too slow"
  health check: CI runs the suite with both cores busy, and an example that
  takes 300 ms there is not a failure of the code under test.
* Every temporary file of the suite (``tempfile`` in the test processes, and
  ``TMPDIR`` for the processes they start) goes to a directory of this test
  session (one per pytest-xdist worker, inside pytest's own owner-only
  ``basetemp``), never to the shared system temp directory.  At the end of the
  session that directory must be empty: a test or fixture that leaves a file
  behind there fails the run, naming what it left.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "pytester",  # tests/unit/test_suite_rules.py runs small suites
    "tests.support.postgres",  # a real PostgreSQL server and fresh databases (issue 18)
    "tests.support.backends",  # data suites on both backends (issue 18)
]

settings.register_profile("huxin", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("huxin")


@pytest.fixture(scope="session", autouse=True)
def session_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's own temp directory (mode 0700); checked empty at the end."""
    private = tmp_path_factory.mktemp("tempfile")
    saved_env, saved_dir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = str(private)
    try:
        yield private
    finally:
        tempfile.tempdir = saved_dir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
    left = sorted(p.name for p in private.iterdir())
    assert not left, f"the tests left temporary files behind in {private}: {left}"

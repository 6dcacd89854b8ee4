"""The suite's own rules (tests/conftest.py) hold and are enforced (issue 14 items 18, 19).

The rules are checked by running a small suite under the same conftest with
pytester in a subprocess: a test that leaves a temporary file fails the run by
name, one that cleans up passes, and a slow Hypothesis example is no failure.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def test_temp_files_go_to_the_sessions_own_directory(session_temp_dir: Path) -> None:
    """Issue 14 item 19: ``tempfile`` and child processes (``TMPDIR``) use a 0700
    directory of this session inside pytest's basetemp, not the system temp dir."""
    assert tempfile.gettempdir() == str(session_temp_dir)
    assert os.environ["TMPDIR"] == str(session_temp_dir)
    assert stat.S_IMODE(session_temp_dir.stat().st_mode) == 0o700
    with tempfile.NamedTemporaryFile() as f:
        assert Path(f.name).parent == session_temp_dir


@pytest.mark.parametrize(
    ("body", "outcome", "says"),
    [
        pytest.param(
            "import tempfile\ndef test_leaks():\n    tempfile.mkdtemp(prefix='huxin-test-leak-')\n",
            {"passed": 1, "errors": 1},
            "left temporary files behind",
            id="leftover-fails-the-run",
        ),
        pytest.param(
            "import tempfile\n"
            "def test_cleans_up():\n"
            "    with tempfile.TemporaryDirectory(prefix='huxin-test-'):\n"
            "        pass\n",
            {"passed": 1},
            "",
            id="cleaned-up-passes",
        ),
        pytest.param(
            "import time\n"
            "from hypothesis import given, settings, strategies as st\n"
            "@settings(max_examples=3)\n"  # the profile's deadline=None still applies
            "@given(st.integers())\n"
            "def test_slow_example(n):\n"
            "    time.sleep(0.3)\n",
            {"passed": 1},
            "",
            id="slow-hypothesis-example-passes",
        ),
    ],
)
def test_the_suite_rules_are_enforced(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    outcome: dict[str, int],
    says: str,
) -> None:
    """Issue 14 items 18 and 19: the conftest fails a session that leaves a temp file
    (naming it) and does not fail a test for being slow."""
    # the conftest loads plugins of this repository's tests package (issue 18)
    monkeypatch.setenv("PYTHONPATH", str(CONFTEST.parents[1]))
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_rule=body)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    if says:
        result.stdout.fnmatch_lines([f"*{says}*huxin-test-leak-*"])


def test_no_test_imports_another_test_file() -> None:
    """issue 17: tests share helpers through support modules (``tests/support/``,
    ``tests/_waiting.py``, the underscore modules), never by importing another test
    file, so that a test file can be moved or deleted without breaking another."""
    import re

    tests = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(from|import)\s+tests\.(\w+\.)*test_\w+", re.MULTILINE)
    offenders = sorted(
        str(path.relative_to(tests))
        for path in tests.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    )
    assert offenders == []

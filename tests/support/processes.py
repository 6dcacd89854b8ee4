"""Child processes of the tests: ``huxin serve`` and the ``huxin`` command.

Starting a node and waiting for its ready file is implemented once, in
:mod:`node.demo._testbed` (:func:`spawn_serve`, :func:`wait_for_ready`,
:class:`ServeProcess`), because the demo and the benchmarks start nodes the
same way; this module re-exports it for the tests and adds the command
runners.  Bounds on waiting only limit how long a broken build hangs on a busy
machine (see :mod:`tests._waiting`), never a claim about speed.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from node.cli._main import main
from node.demo._testbed import ServeProcess, spawn_serve, wait_for_ready

__all__ = [
    "CliResult",
    "ServeProcess",
    "huxin",
    "huxin_here",
    "spawn_serve",
    "wait_for_ready",
]

# the installed console script when there is one (it is what operators run),
# else the module: both run the same ``node.cli.main``
_SCRIPT = shutil.which("huxin", path=str(Path(sys.executable).parent))


def huxin(
    *argv: str,
    timeout: float = 300.0,
    check: bool = False,
    stdin: str | None = None,
    script: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``huxin ARGV...`` in a child process and return what it did (exit code,
    stdout, stderr as text).  ``script=True`` runs the installed console script when
    the environment has one; ``stdin`` is text fed to the command (an ID number is
    given that way, never on the command line)."""
    cmd = [_SCRIPT] if script and _SCRIPT else [sys.executable, "-m", "node"]
    return subprocess.run(
        [*cmd, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


class CliResult(NamedTuple):
    """What an in-process ``huxin`` run returned and printed (unpacks as a tuple)."""

    code: int
    out: str
    err: str


def huxin_here(*argv: str) -> CliResult:
    """Run ``huxin ARGV...`` in this process (``node.cli.main``), capturing what it
    prints: for tests that need the command's effect on objects they hold (a
    monkeypatched clock, an in-process node) rather than a separate process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return CliResult(code, out.getvalue(), err.getvalue())

"""Shared synthetic populations for node tests (generated once per session, then copied).

The databases live in a directory of the session's pytest ``basetemp`` (one per
pytest-xdist worker) that the ``populations`` fixture (tests/unit/node/conftest.py)
removes when the session ends: nothing is left in the system temp directory.

Invariant: every file and directory written here is the owner's alone (0600 /
0700) whatever the process umask, as every file Huxin writes.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

from node.synthetic._population import PopulationSpec, generate

AS_OF = date(2026, 11, 30)
FILE_MODE = 0o600


class Populations:
    """Generated databases of one test session under ``root`` (a 0700 directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[tuple[str, int, int], Path] = {}

    def db(self, scheme: str = "heihe", people: int = 1500, seed: int = 11) -> Path:
        """A generated database; do not write to it (use :func:`copy_of`)."""
        key = (scheme, people, seed)
        if key not in self._made:
            path = self.root / f"{scheme}-{people}-{seed}.db"
            generate(PopulationSpec(scheme, people, seed, AS_OF), path, chunk_people=400)
            self._made[key] = path
        return self._made[key]


def copy_of(src: Path, dest_dir: Path) -> Path:
    """A private copy (mode 0600) of ``src`` in ``dest_dir``, for a test that writes."""
    dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest = dest_dir / src.name
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as out, src.open("rb") as data:
        shutil.copyfileobj(data, out)
    return dest

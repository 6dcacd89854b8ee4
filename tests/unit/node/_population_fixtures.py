"""Shared synthetic populations for node tests (generated once per process, then copied)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import date
from functools import cache
from pathlib import Path

from node._population import PopulationSpec, generate

AS_OF = date(2026, 11, 30)


@cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="huxin-test-pop-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@cache
def population_db(scheme: str = "heihe", people: int = 1500, seed: int = 11) -> Path:
    """A generated database; do not write to it (use :func:`copy_of`)."""
    spec = PopulationSpec(scheme, people, seed, AS_OF)
    path = _root() / f"{scheme}-{people}-{seed}.db"
    generate(spec, path, chunk_people=400)
    return path


def copy_of(src: Path, dest_dir: Path) -> Path:
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    return dest

"""Fixtures shared by the node unit tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ._population_fixtures import Populations


@pytest.fixture(scope="session")
def populations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Populations]:
    """Synthetic populations generated at most once per session (per xdist worker);
    removed at the session's end (several MB each: not kept with pytest's last runs)."""
    root = tmp_path_factory.mktemp("populations")  # mode 0700
    yield Populations(root)
    shutil.rmtree(root)

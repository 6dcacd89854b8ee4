"""A one-time identity assertion is accepted once per node, not once per replica
(issue 18 defect 9; docs/adr/0416, docs/adr/0702): on PostgreSQL the replicas'
replay caches share the ``identity_replay`` table (migration 0015)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core._errors import UnauthenticatedError
from node.rpc._replay import KEY_BYTES, ReplayCache
from node.store._replay import SharedReplay

NOW = 1_796_083_200
KEY = b"k" * KEY_BYTES


def _replica(url: str) -> ReplayCache:
    return ReplayCache(1_000, shared=SharedReplay(url))


def test_an_assertion_accepted_by_one_replica_is_refused_by_the_other(pg_url: str) -> None:
    """Two replicas' caches (own connections, own memory): the second admission of one
    key anywhere is IDENTITY_REPLAYED; another key is accepted."""
    a, b = _replica(pg_url), _replica(pg_url)
    try:
        a.admit(KEY, NOW + 300, NOW)
        with pytest.raises(UnauthenticatedError) as err:
            b.admit(KEY, NOW + 300, NOW + 1)
        assert err.value.code == "IDENTITY_REPLAYED"
        with pytest.raises(UnauthenticatedError) as again:
            a.admit(KEY, NOW + 300, NOW + 2)
        assert again.value.code == "IDENTITY_REPLAYED"
        b.admit(b"o" * KEY_BYTES, NOW + 300, NOW + 3)
    finally:
        a.close()
        b.close()


def test_an_expired_key_leaves_the_table(pg_url: str) -> None:
    """Rows are kept until the assertion's expiry, then the next admission deletes them."""
    store = SharedReplay(pg_url)
    try:
        assert store.admit(KEY, NOW + 10, NOW)
        assert not store.admit(KEY, NOW + 10, NOW + 5)
        assert store.admit(b"o" * KEY_BYTES, NOW + 100, NOW + 10)  # KEY expired here
        assert store.admit(KEY, NOW + 200, NOW + 11)
    finally:
        store.close()


def test_sqlite_nodes_keep_the_journal(tmp_path: Path) -> None:
    """The SQLite cache is the journal file beside the database (unchanged)."""
    journal = tmp_path / "node.db.identity-replay"
    cache = ReplayCache(1_000, journal)
    cache.admit(KEY, NOW + 300, NOW)
    cache.close()
    again = ReplayCache(1_000, journal)
    with pytest.raises(UnauthenticatedError) as err:
        again.admit(KEY, NOW + 300, NOW + 1)
    assert err.value.code == "IDENTITY_REPLAYED"
    again.close()

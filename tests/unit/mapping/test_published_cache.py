"""Published mapping tables are read and hash-checked once and cached; documents a
caller reads from its own path are not (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapping import (
    TableError,
    load_schemes,
    published_file_name,
    published_table,
    published_tables,
    table_from_document,
)


def test_two_calls_return_the_same_tables() -> None:
    """Issue 17: the shipped tables are parsed once per process, not on every call."""
    first = published_tables()
    assert published_tables() is first
    for table in first:
        one = published_table(table.source.scheme, table.target.scheme)
        assert published_table(table.source.scheme, table.target.scheme) is one
        assert one == table


def test_load_schemes_is_a_fresh_dict_of_the_cached_schemes() -> None:
    """Issue 17: callers may add to the dict; the schemes in it are the shared ones."""
    one, two = load_schemes("heihe", "hainan"), load_schemes("heihe", "hainan")
    assert one is not two
    assert all(one[sid] is two[sid] for sid in one)


@pytest.mark.parametrize(
    ("source", "target", "code"),
    [
        pytest.param("heihe", "atlantis", "UNKNOWN_SCHEME", id="unknown-scheme"),
        pytest.param("heihe", "heihe", "NO_ROUTE", id="no-table-to-itself"),
    ],
)
def test_a_missing_table_is_refused_on_every_call(source: str, target: str, code: str) -> None:
    """Issue 17: a failure is not cached as an answer; it raises each time."""
    for _ in range(2):
        with pytest.raises(TableError) as err:
            published_table(source, target)
        assert err.value.code == code


def test_a_modified_table_file_is_not_served_stale(tmp_path: Path) -> None:
    """Issue 17: a table a caller reads from its own path (``huxin mapping check
    FILE``) is parsed on every call, so an edit is seen at once, and the cached
    published table is untouched by it."""
    shipped = published_table("heihe", "hainan")
    path = tmp_path / published_file_name("heihe", "hainan")
    path.write_bytes(shipped.to_json_bytes())
    first = table_from_document(path.read_bytes())
    assert first == shipped
    assert first is not shipped
    edited = shipped.to_json_bytes().replace(b'"version": "1"', b'"version": "2"', 1)
    assert edited != shipped.to_json_bytes()
    path.write_bytes(edited)
    with pytest.raises(TableError) as err:  # the edited bytes fail their content hash
        table_from_document(path.read_bytes())
    assert err.value.code == "HASH_MISMATCH"
    assert published_table("heihe", "hainan") is shipped

"""The PostgreSQL adapter's SQL translation (issue 18; docs/adr/0700): SQLite's ``?``
placeholders become ``%s``, a literal ``%`` is doubled (psycopg reads ``%``
everywhere), and quoted text and comments keep their ``?``."""

from __future__ import annotations

import pytest

from node.store._pg import translate

TRANSLATIONS = [
    pytest.param("SELECT ?", "SELECT %s", id="placeholder"),
    pytest.param("a = ? AND b IN (?, ?)", "a = %s AND b IN (%s, %s)", id="several"),
    pytest.param("x LIKE 'a%'", "x LIKE 'a%%'", id="percent-in-literal"),
    pytest.param("x % 2 = ?", "x %% 2 = %s", id="modulo"),
    pytest.param("SELECT '?', \"?\"", "SELECT '?', \"?\"", id="quoted-question-marks"),
    pytest.param("SELECT 'it''s ?' || ?", "SELECT 'it''s ?' || %s", id="escaped-quote"),
    pytest.param("SELECT 1 -- what?\n, ?", "SELECT 1 -- what?\n, %s", id="line-comment"),
    pytest.param("SELECT /* ? */ ?", "SELECT /* ? */ %s", id="block-comment"),
    pytest.param("BEGIN IMMEDIATE", "BEGIN", id="begin-immediate"),
    pytest.param("begin exclusive", "BEGIN", id="begin-exclusive"),
    pytest.param("SAVEPOINT unit", "SAVEPOINT unit", id="savepoint"),
]


@pytest.mark.parametrize(("sqlite", "postgresql"), TRANSLATIONS)
def test_translate(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql

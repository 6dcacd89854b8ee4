"""The SQL of the population registry (docs/adr/0508; H1, H7, N1).

Subjects' registry columns, ``residences`` and the ``population_facts`` trail
(a fact batch's ``source_batches`` row: :mod:`node.store._batches`).  Every
function runs inside the caller's unit (a rights unit for a fact batch, a read
unit for a registry read) and never commits; which fact does what, and in which
order, is decided by :mod:`node.population._registry`.

Invariants:

* a residence that ends keeps its row with ``ended_on``; a fact re-opening the
  same (kind, since) clears ``ended_on`` instead of adding a row;
* a death is recorded once (the first date stands); a subject row is never
  replaced by a fact batch (``ON CONFLICT DO NOTHING``: the first sealed ID stands);
* the fact trail holds the subject key only, never an ID number.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "add_residences",
    "deregistered_tombstones",
    "end_named_residences",
    "end_residences",
    "insert_facts",
    "insert_subjects",
    "record_deaths",
    "registry_row",
    "residences_of",
    "revoke_valid_attestations",
    "set_capacity",
    "withdraw_consents",
]

_CHUNK = 500  # tombstones per IN (...) list, well under SQLite's parameter limit


def registry_row(conn: sqlite3.Connection, key: bytes) -> Any:
    """(birth_date, full_civil_capacity, died_on) of a registered person, or None."""
    return conn.execute(
        "SELECT birth_date, full_civil_capacity, died_on FROM subjects "
        "WHERE subject_key = ? AND deregistered_at IS NULL",
        (key,),
    ).fetchone()


def residences_of(conn: sqlite3.Connection, key: bytes) -> list[tuple[str, str, str | None]]:
    """(kind, since, ended_on) of every residence row of the person, by since then kind."""
    return conn.execute(
        "SELECT kind, since, ended_on FROM residences WHERE subject_key = ? ORDER BY since, kind",
        (key,),
    ).fetchall()


def add_residences(conn: sqlite3.Connection, rows: Iterable[tuple[bytes, str, str]]) -> None:
    """(key, kind, since): open each residence, or re-open an ended one."""
    conn.executemany(
        "INSERT INTO residences (subject_key, kind, since) VALUES (?, ?, ?) "
        "ON CONFLICT (subject_key, kind, since) DO UPDATE SET ended_on = NULL",
        rows,
    )


def end_named_residences(
    conn: sqlite3.Connection, rows: Iterable[tuple[str, bytes, str, str]]
) -> None:
    """(ended_on, key, kind, on): end the person's open residences of ``kind`` begun by ``on``."""
    conn.executemany(
        "UPDATE residences SET ended_on = ? WHERE subject_key = ? AND kind = ? "
        "AND ended_on IS NULL AND since <= ?",
        rows,
    )


def end_residences(conn: sqlite3.Connection, rows: Iterable[tuple[str, bytes, str]]) -> None:
    """(ended_on, key, on): end every open residence of the person begun by ``on``."""
    conn.executemany(
        "UPDATE residences SET ended_on = ? WHERE subject_key = ? "
        "AND ended_on IS NULL AND since <= ?",
        rows,
    )


def set_capacity(conn: sqlite3.Connection, rows: Iterable[tuple[int, bytes]]) -> None:
    """(full_civil_capacity, key): set each person's civil capacity."""
    conn.executemany("UPDATE subjects SET full_civil_capacity = ? WHERE subject_key = ?", rows)


def record_deaths(conn: sqlite3.Connection, rows: Iterable[tuple[str, bytes]]) -> None:
    """(died_on, key): record a death unless one is recorded already."""
    conn.executemany(
        "UPDATE subjects SET died_on = ? WHERE subject_key = ? AND died_on IS NULL", rows
    )


def withdraw_consents(conn: sqlite3.Connection, key: bytes, now_s: int, code: str) -> int:
    """Withdraw every open consent of the person at ``now_s`` for ``code``; returns how many."""
    return int(
        conn.execute(
            "UPDATE consents SET withdrawn_at = ?, withdrawn_reason = ? "
            "WHERE subject_key = ? AND withdrawn_at IS NULL",
            (now_s, code, key),
        ).rowcount
    )


def revoke_valid_attestations(
    conn: sqlite3.Connection, key: bytes, revoked: int, valid: int
) -> None:
    """Attestations of the person in state ``valid`` move to ``revoked``."""
    conn.execute(
        "UPDATE status_entries SET status = ? WHERE subject_key = ? AND status = ?",
        (revoked, key, valid),
    )


def deregistered_tombstones(conn: sqlite3.Connection, stones: Sequence[bytes]) -> set[bytes]:
    """Those of ``stones`` that stand in ``deregistrations`` (H2)."""
    gone: set[bytes] = set()
    items = sorted(stones)
    for i in range(0, len(items), _CHUNK):
        part = items[i : i + _CHUNK]
        marks = ",".join("?" * len(part))
        gone.update(
            bytes(r[0])
            for r in conn.execute(
                f"SELECT tombstone FROM deregistrations WHERE tombstone IN ({marks})", part
            )
        )
    return gone


def insert_subjects(
    conn: sqlite3.Connection, rows: Iterable[tuple[bytes, str, bytes, str]]
) -> None:
    """(key, birth_date, id_sealed, registered_at): add the people not yet stored."""
    conn.executemany(
        "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (subject_key) DO NOTHING",
        rows,
    )


def insert_facts(
    conn: sqlite3.Connection, rows: Iterable[tuple[str, str, int, bytes, str, str, str]]
) -> None:
    """(submitted_by, batch_id, seq, key, kind, residence_kind, on_date): the fact trail."""
    conn.executemany(
        "INSERT INTO population_facts (submitted_by, batch_id, seq, subject_key, kind, "
        "residence_kind, on_date) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )

"""Read-only reads of the operator's audit of third-party queries and uses (H16, N23).

Every function reads through the caller's connection (opened read-only by the
CLI) and writes nothing.  Invariant: nothing returned here identifies a
person: consents come without their subject, log entries as their stored
leaves (which hold only the pseudonymous ``subject_ref``), the rest as counts
or objection ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

__all__ = [
    "consent_terms",
    "late_records_by_source",
    "leaves_of_kinds",
    "missed_deadlines_by_source",
    "objections_by_state",
    "overdue_steps",
]


def consent_terms(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """consent id -> (audience, purpose) of every consent held."""
    return {
        str(cid): (str(aud), str(purpose))
        for cid, aud, purpose in conn.execute("SELECT consent_id, audience, purpose FROM consents")
    }


def leaves_of_kinds(conn: sqlite3.Connection, kinds: Sequence[str]) -> Iterator[bytes]:
    """The stored leaves of log entries of ``kinds``, in log order (streamed)."""
    marks = ",".join("?" * len(kinds))
    for (leaf,) in conn.execute(
        f"SELECT leaf FROM log_entries WHERE kind IN ({marks}) ORDER BY idx", tuple(kinds)
    ):
        yield bytes(leaf)


def late_records_by_source(conn: sqlite3.Connection) -> dict[str, int]:
    """Department -> how many of its records were shared after their due day (N7)."""
    return dict(
        conn.execute(
            "SELECT submitted_by, count(*) FROM records WHERE share_due IS NOT NULL GROUP BY 1"
        ).fetchall()
    )


def missed_deadlines_by_source(conn: sqlite3.Connection) -> dict[str, int]:
    """Department -> how many objections were deemed accepted (a missed deadline, H15)."""
    return dict(
        conn.execute(
            "SELECT source, count(*) FROM objections WHERE state_json LIKE ? GROUP BY source",
            # a parameter: a literal % would read as a placeholder to the PostgreSQL driver
            ('%"deemed_accepted"%',),
        ).fetchall()
    )


def objections_by_state(conn: sqlite3.Connection) -> dict[str, int]:
    """Objection state -> how many objections are in it."""
    return {
        str(k): int(v)
        for k, v in conn.execute("SELECT state, count(*) FROM objections GROUP BY state")
    }


def overdue_steps(conn: sqlite3.Connection, today: str) -> list[tuple[str, str, str, str]]:
    """(objection id, source, waiting_for, due) of open steps due before ``today``, by due."""
    return [
        (str(a), str(b), str(c), str(d))
        for a, b, c, d in conn.execute(
            "SELECT objection_id, source, waiting_for, due FROM objections "
            "WHERE state != 'replied' AND due IS NOT NULL AND due < ? ORDER BY due",
            (today,),
        )
    ]

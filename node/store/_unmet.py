"""The read of ending consents a corrected or published grade does not meet.

Runs inside the unit that publishes or corrects grades (the caller's
connection, never committing).  Which consents end, and why, is decided by
:mod:`node.disclosure._unmet`.  Invariant: a consent is active while it is not
withdrawn and ``not_after`` is later than ``now``; one row per consent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

__all__ = ["active_consents"]

_ACTIVE = (
    "SELECT consent_id, subject_key, audience, purpose, scope FROM consents"
    " WHERE withdrawn_at IS NULL AND not_after > ?"
)
_ACTIVE_OF = _ACTIVE + " AND subject_key = ?"


def active_consents(
    conn: sqlite3.Connection, now: int, subjects: Iterable[bytes] | None
) -> list[Any]:
    """(consent_id, subject_key, audience, purpose, scope) of the active consents of
    ``subjects`` (None: of everyone), subject by subject in the given order."""
    if subjects is None:
        return conn.execute(_ACTIVE, (now,)).fetchall()
    return [r for k in subjects for r in conn.execute(_ACTIVE_OF, (now, k)).fetchall()]

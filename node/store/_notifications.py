"""Reading the citizen's notifications (``ListNotifications``).

Notifications are written inside the unit of the event they tell about
(:func:`node.store._consents.notify_subject`); here they are read back for the
person alone.  Invariant: a person reads only rows keyed by their own subject
key, in id order, so ``after_id`` pages through them without gaps or repeats.
"""

from __future__ import annotations

from typing import Any

from node.store._db import Database

__all__ = ["notifications_after"]


async def notifications_after(db: Database, key: bytes, after_id: int) -> list[Any]:
    """(id, created_at, kind, message) of the person's notifications after ``after_id``."""
    return await db.fetchall(
        "SELECT id, created_at, kind, message FROM notifications "
        "WHERE subject_key = ? AND id > ? ORDER BY id",
        (key, after_id),
    )

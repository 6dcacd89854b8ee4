"""Storage of a scheme's rollout (H11): one ``rollouts`` row per scheme id.

:mod:`node.model._rollout` decides the rollout's state and serialises it; this
module only reads and writes the row.  ``conn`` functions run inside the caller's
unit of work; :func:`rollout_state` reads on the database's reader.

Invariants:

* one row per scheme id, replaced whole (state, candidate text, last shadow report);
* the candidate's TOML text is stored as given, so the version scored after a switch
  is the one that was evaluated.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["rollout_row", "rollout_state", "save_rollout"]


def rollout_row(conn: sqlite3.Connection, scheme_id: str) -> Any:
    """(state_json, candidate_toml, shadow_json) of the scheme's rollout, or None."""
    return conn.execute(
        "SELECT state_json, candidate_toml, shadow_json FROM rollouts WHERE scheme_id = ?",
        (scheme_id,),
    ).fetchone()


def save_rollout(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection,
    scheme_id: str,
    state_json: str,
    candidate_toml: str | None,
    shadow_json: str | None,
    updated_at: str,
) -> None:
    conn.execute(
        "INSERT INTO rollouts (scheme_id, state_json, candidate_toml, shadow_json, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (scheme_id) DO UPDATE SET "
        "state_json = excluded.state_json, candidate_toml = excluded.candidate_toml, "
        "shadow_json = excluded.shadow_json, updated_at = excluded.updated_at",
        (scheme_id, state_json, candidate_toml, shadow_json, updated_at),
    )


async def rollout_state(db: Any, scheme_id: str) -> Any:
    """(state_json, candidate_toml) of the scheme's rollout, or None (a
    :class:`node.store._db.Database`, read on its reader)."""
    return await db.fetchone(
        "SELECT state_json, candidate_toml FROM rollouts WHERE scheme_id = ?", (scheme_id,)
    )

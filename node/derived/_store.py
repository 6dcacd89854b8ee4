"""The row of a derived score on the node: the version in force (docs/adr/0006).

One row of ``rollouts`` per derived score that was rolled out, keyed
``derived:<id>`` (``:`` never occurs in a scheme id, so the key cannot collide
with a scheme's rollout row): ``state_json`` says which version and when,
``candidate_toml`` is that version's TOML text (the node serves it without the
file), ``shadow_json`` the evaluation figures it was rolled out with.  A row is
replaced whole by a later rollout; without a row the shipped file is in force.
The SQL is :mod:`node.store._rollouts`' (the same table as a scheme's rollout);
this module only maps a derived score to and from its row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node.store import Connection
from node.store import _rollouts as rollouts

__all__ = [
    "DerivedRow",
    "derived_key",
    "read_derived_row",
    "scheme_rollout_row",
    "write_derived_row",
]

_PREFIX = "derived:"


def derived_key(derived_id: str) -> str:
    """The ``rollouts.scheme_id`` of a derived score's row."""
    return _PREFIX + derived_id


@dataclass(frozen=True, slots=True)
class DerivedRow:
    version: str
    toml: str
    rolled_out_on: str  # ISO date
    evaluation: dict[str, Any]


def read_derived_row(conn: Connection, derived_id: str) -> DerivedRow | None:
    row = rollouts.rollout_row(conn, derived_key(derived_id))
    if row is None or row[1] is None:
        return None
    state = json.loads(row[0])
    return DerivedRow(
        str(state["version"]), str(row[1]), str(state["rolled_out_on"]), json.loads(row[2] or "{}")
    )


def scheme_rollout_row(conn: Connection, scheme_id: str) -> tuple[str, str | None] | None:
    """The scheme's own rollout row (state JSON, candidate TOML), read by the rollout CLI
    to know the scheme version in force (node.model._rollout.active_scheme)."""
    row = rollouts.scheme_row(conn, scheme_id)
    return None if row is None else (str(row[0]), row[1])


def write_derived_row(conn: Connection, derived_id: str, row: DerivedRow, updated_at: str) -> None:
    """The derived score's row, replaced whole (inside the caller's transaction)."""
    state = {"kind": "derived", "version": row.version, "rolled_out_on": row.rolled_out_on}
    rollouts.save_rollout(
        conn,
        derived_key(derived_id),
        json.dumps(state, separators=(",", ":")),
        row.toml,
        json.dumps(row.evaluation, separators=(",", ":"), ensure_ascii=False),
        updated_at,
    )

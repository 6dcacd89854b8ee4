"""Model rollout on the node (H11, N12): the pure :class:`scoring.Rollout`, persisted.

One row per scheme id in ``rollouts``: the rollout state as JSON, the
candidate scheme's TOML text (so the node can score with it once it is
active, without the file), and the last shadow-scoring report.

Invariants: every stage change goes through :class:`scoring.Rollout` (its
rules refuse a trial without an evaluation, an activation without enough
trial days, …); :func:`active_scheme` is what the server scores with on a
given day — the candidate only once a scheduled rollout's effective date
has come — so attestations name (``model_version`` = ``scheme@version``) the
version that produced them; the candidate text is checked again when read.

The version in force is held by one :class:`SchemeInForce` per node: an
immutable :class:`scoring.Scheme` replaced in ONE assignment by
:func:`follow_rollout` (run by the rights scheduler), so a running node
switches at the effective date without a restart.  A request reads the
scheme once (``ctx.scheme``) and scores, names and signs with that one
object, so it never mixes versions.  A running node serves exactly what a
restart at the same instant would serve (both go through
:func:`active_scheme`); trial/shadow versions are never served.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from node.core._observe import log_event
from node.store import Connection
from node.store import _rollouts as rollouts
from scoring import (
    Evaluation,
    Rollout,
    RolloutError,
    Scheme,
    SchemeError,
    Stage,
    parse_scheme_toml,
)

if TYPE_CHECKING:
    from node.store._db import Database

__all__ = [
    "SchemeInForce",
    "Switch",
    "active_scheme",
    "active_scheme_of",
    "current_toml_of",
    "dump_rollout",
    "follow_rollout",
    "load_rollout",
    "read_rollout",
    "rollout_schemes",
    "write_rollout",
]


def dump_rollout(r: Rollout, current_toml: str | None = None) -> str:
    """The state as JSON; ``current_toml`` keeps the text of a rolled-out current
    version (not the shipped one) once another candidate takes the candidate slot."""
    d: dict[str, Any] = asdict(r)
    d["stage"] = r.stage.value
    for k in ("current_since", "trial_started", "effective"):
        d[k] = d[k].isoformat() if d[k] else None
    if current_toml is not None:
        d["current_toml"] = current_toml
    return json.dumps(d, separators=(",", ":"))


def current_toml_of(state_json: str) -> str | None:
    """The stored text of the current version, when it is a rolled-out one."""
    text = json.loads(state_json).get("current_toml")
    return text if isinstance(text, str) else None


def load_rollout(text: str) -> Rollout:
    d: dict[str, Any] = json.loads(text)
    ev = d.get("evaluation")
    return Rollout(
        scheme_id=d["scheme_id"],
        current_version=d["current_version"],
        current_since=date.fromisoformat(d["current_since"]),
        stage=Stage(d["stage"]),
        candidate_version=d["candidate_version"],
        evaluation=Evaluation(**ev) if ev else None,
        shift_accepted=bool(d["shift_accepted"]),
        trial_started=date.fromisoformat(d["trial_started"]) if d["trial_started"] else None,
        effective=date.fromisoformat(d["effective"]) if d["effective"] else None,
        max_psi=float(d["max_psi"]),
        min_trial_days=int(d["min_trial_days"]),
        min_auc=_optional_float(d.get("min_auc")),
        min_ks=_optional_float(d.get("min_ks")),
        max_monthly_psi=_optional_float(d.get("max_monthly_psi")),
    )


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def read_rollout(
    conn: Connection, scheme: Scheme
) -> tuple[Rollout, Scheme | None, dict[str, Any] | None]:
    """(rollout, candidate scheme, last shadow report) — a fresh rollout if none is stored."""
    row = rollouts.rollout_row(conn, scheme.id)
    if row is None:
        return Rollout.start(scheme), None, None
    candidate = parse_scheme_toml(row[1]) if row[1] else None
    return load_rollout(row[0]), candidate, json.loads(row[2]) if row[2] else None


def rollout_schemes(conn: Connection, shipped: Scheme) -> list[Scheme]:
    """The stored versions of ``shipped``'s id beyond the shipped one: the candidate and a
    rolled-out current version (damaged texts are skipped; they never score either)."""
    row = rollouts.scheme_row(conn, shipped.id)
    if row is None:
        return []
    out: list[Scheme] = []
    for text in (row[1], current_toml_of(row[0])):
        if not text:
            continue
        try:
            scheme = parse_scheme_toml(text)
        except SchemeError:
            continue
        if scheme.id == shipped.id:
            out.append(scheme)
    return out


def write_rollout(
    conn: Connection,
    r: Rollout,
    candidate_toml: str | None,
    shadow: dict[str, Any] | None,
    now_iso: str,
    *,
    current_toml: str | None = None,
) -> None:
    rollouts.save_rollout(
        conn,
        r.scheme_id,
        dump_rollout(r, current_toml),
        candidate_toml,
        None if shadow is None else json.dumps(shadow),
        now_iso,
    )


def active_scheme(
    state_json: str | None, candidate_toml: str | None, shipped: Scheme, today: date
) -> Scheme:
    """The scheme version that scores (and is named in attestations) on ``today``:
    the shipped one, or the stored text (candidate, or rolled-out current) of the
    version the state puts in force — fail safe: shipped if no text matches."""
    if state_json is None:
        return shipped
    due = load_rollout(state_json).version_on(today)
    if due == shipped.version:
        return shipped
    for text in (candidate_toml, current_toml_of(state_json)):
        if text is None:
            continue
        try:
            scheme = parse_scheme_toml(text)
        except SchemeError:
            continue  # a damaged stored text never scores
        if scheme.id == shipped.id and scheme.version == due:
            return scheme
    return shipped  # never score with a text that does not match the state


async def active_scheme_of(db: Database, shipped: Scheme, today: date) -> Scheme:
    """:func:`active_scheme` from the node's database (at start and at each scheduler step)."""
    row = await rollouts.rollout_state(db, shipped.id)
    return active_scheme(row[0] if row else None, row[1] if row else None, shipped, today)


class SchemeInForce:
    """The scheme version a node scores with now, switchable while it runs.

    ``current`` is one immutable :class:`Scheme`; :meth:`switch` replaces it in
    a single reference assignment (atomic for readers on any thread), so a
    reader sees the old or the new version, never a mix.  Only versions of
    the shipped scheme's id are accepted.
    """

    __slots__ = ("_current", "shipped")

    def __init__(self, shipped: Scheme, current: Scheme | None = None) -> None:
        self.shipped = shipped
        self._current = shipped
        if current is not None:
            self.switch(current)

    @property
    def current(self) -> Scheme:
        return self._current

    def switch(self, scheme: Scheme) -> Scheme:
        """Put ``scheme`` in force; returns the version it replaced."""
        if scheme.id != self.shipped.id:
            raise RolloutError("scheme.id", f"{scheme.id!r} is not scheme {self.shipped.id!r}")
        previous, self._current = self._current, scheme
        return previous


@dataclass(frozen=True, slots=True)
class Switch:
    """A version change made by :func:`follow_rollout` (``scheme@version`` keys)."""

    previous: str
    current: str
    day: date


async def follow_rollout(db: Database, in_force: SchemeInForce, today: date) -> Switch | None:
    """Put the version in force on ``today`` in force now, if it is not already.

    Returns the switch made (logged), or None when the version did not change.
    """
    due = await active_scheme_of(db, in_force.shipped, today)
    if due.key == in_force.current.key:
        return None
    previous = in_force.switch(due)
    switch = Switch(previous.key, due.key, today)
    log_event(
        "model version switched",
        scheme=due.id,
        previous=switch.previous,
        current=switch.current,
        day=today.isoformat(),
    )
    return switch

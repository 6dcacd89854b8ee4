"""The population registry: fact batches in, who exists and is served out.

The SQL is :mod:`node.store._population`; this module keeps the rules (which
fact does what, in which order, whom the node stops serving and why).

Invariants:

* a fact batch is ONE write unit with its ``source_batches`` row (the
  department's id namespace, shared with record batches): stored whole or not
  at all; the same id with the same content is a replay (nothing written, the
  first answer), with other content ``BATCH_ID_REUSED``;
* the ID number is stored only sealed (AES-GCM, aad = subject key), exactly as
  a record's subject (:class:`node.store._records.RecordsRepository`); the
  fact trail (``population_facts``) holds the subject key only;
* facts apply in batch order (a move-out then a move-in of one person in one
  batch ends as a resident); a residence that ends keeps its row with
  ``ended_on`` and a death keeps the subject row and records (retention): the
  readers leave them out of the run and of serving;
* a person whose facts leave them not served (dead, no current residence,
  otherwise ineligible) has every open consent withdrawn in the same unit,
  with ``withdrawn_reason`` = the reason code, their attestations revoked, a
  notification and a transparency-log entry naming the code;
* a deregistered person (H2 tombstone) is not stored again: their facts are
  skipped (``accepted`` counts the stored facts only);
* a person's CURRENT residence bases stay within ``RESIDENCES_MAX`` (contribution
  years within ``CONTRIBUTION_YEARS_MAX``) across every batch and department: a
  batch whose facts would leave more is refused whole, INVALID_ARGUMENT
  ``TOO_MANY_ITEMS`` naming ``facts[i].residence_kind``.  Ended
  residences do not count: they are history, each one closed by its own fact.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from node.core._bounds import CONTRIBUTION_KINDS, CONTRIBUTION_YEARS_MAX, RESIDENCES_MAX
from node.core._errors import FailedPreconditionError, NotFoundError
from node.population._facts import ENDS, Fact
from node.rights._events import RightsTx, run_rights_unit
from node.store import Connection
from node.store import _population as store
from node.store._batches import insert_batch
from node.store._consents import STATUS_REVOKED, STATUS_VALID
from node.store._records import (
    BatchResult,
    replayed_batch,
    residence_bound_error,
    residence_counts,
    tombstone,
)
from scoring import Residence, Scheme, Subject, birth_date, eligibility_problem

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = [
    "ENDING_KINDS",
    "RegistryState",
    "apply_facts",
    "not_served_reason",
    "registry_state",
    "registry_states",
    "require_served",
    "state_of",
]

#: Facts after which a person may no longer be served.
ENDING_KINDS = frozenset({*ENDS, "capacity_lost", "death"})
#: Facts that add (or re-open) a residence row: bounded per person as stored.
_ADDS = frozenset({"move_in", "permit_issued", "contribution_year"})


@dataclass(frozen=True, slots=True)
class RegistryState:
    """What the registry knows of one person now (no ID number)."""

    birth_date: date
    full_civil_capacity: bool
    died_on: date | None
    current: tuple[Residence, ...]
    ended: int  # residences that ended (move-out, permit expiry)

    def subject(self) -> Subject:
        return Subject(self.birth_date, self.current, self.full_civil_capacity)


def registry_state(conn: Connection, key: bytes) -> RegistryState | None:
    """The person's registry row (sync, inside a unit), or None when unknown."""
    row = store.registry_row(conn, key)
    if row is None:
        return None
    current: list[Residence] = []
    ended = 0
    for kind, since, ended_on in store.residences_of(conn, key):
        if ended_on is None:
            current.append(Residence(kind, date.fromisoformat(since)))
        else:
            ended += 1
    died = None if row[2] is None else date.fromisoformat(row[2])
    return RegistryState(date.fromisoformat(row[0]), bool(row[1]), died, tuple(current), ended)


def registry_states(conn: Connection, keys: Sequence[bytes]) -> dict[bytes, RegistryState]:
    """:func:`registry_state` of each known key (sync)."""
    out: dict[bytes, RegistryState] = {}
    for key in keys:
        state = registry_state(conn, key)
        if state is not None:
            out[key] = state
    return out


def not_served_reason(state: RegistryState, scheme: Scheme, today: date) -> tuple[str, str] | None:
    """(reason code, message) when the person is no longer served, else None.

    ``SUBJECT_DECEASED`` after a death; ``SUBJECT_NOT_RESIDENT`` when every
    residence the registry held has ended; ``SUBJECT_NOT_ELIGIBLE`` when the
    scheme's rules (age, capacity, residence years) exclude the person.  A
    person who never had a residence on file (records filed before the
    registry) is judged by the engine alone, as before.
    """
    if state.died_on is not None and state.died_on <= today:
        return "SUBJECT_DECEASED", f"the population authority recorded a death on {state.died_on}"
    if not state.current and state.ended:
        return "SUBJECT_NOT_RESIDENT", "the person no longer holds a residence basis here (H1, N1)"
    if state.current or not state.full_civil_capacity:
        problem = eligibility_problem(state.subject(), scheme, today)
        if problem is not None:
            return "SUBJECT_NOT_ELIGIBLE", f"not a subject of the scheme: {problem} (H1, N1)"
    return None


def _apply_run(conn: Connection, kind: str, rows: list[tuple[bytes, Fact]]) -> None:
    """One batched write for a run of consecutive facts of one kind."""
    if kind in ("move_in", "permit_issued", "contribution_year"):
        store.add_residences(conn, [(k, f.residence_kind, f.on.isoformat()) for k, f in rows])
    elif kind in ENDS:
        named = [(f.on.isoformat(), k, f.residence_kind, f.on.isoformat())
                 for k, f in rows if f.residence_kind]  # fmt: skip
        every = [(f.on.isoformat(), k, f.on.isoformat()) for k, f in rows if not f.residence_kind]
        store.end_named_residences(conn, named)
        store.end_residences(conn, every)
    elif kind in ("capacity_lost", "capacity_restored"):
        store.set_capacity(conn, [(int(kind == "capacity_restored"), k) for k, _f in rows])
    elif kind == "death":
        store.record_deaths(conn, [(f.on.isoformat(), k) for k, f in rows])


def _end_consents(rtx: RightsTx, key: bytes, code: str, message: str) -> int:
    """Withdraw the person's open consents and revoke what was issued under them."""
    conn = rtx.conn
    ended = store.withdraw_consents(conn, key, rtx.now_s, code)
    store.revoke_valid_attestations(conn, key, STATUS_REVOKED, STATUS_VALID)
    if ended:
        rtx.notify(key, "consent", f"{code}: {ended} consent(s) ended: {message}")
        rtx.log("consents_ended", key, reason=f"{code}: {ended} consent(s) ended")
    return ended


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A fact batch's CPU work (keying, sealing, row building), done before the unit.

    Rows are in subject-key order: keys are HMACs, so batch order would touch
    B-tree pages at random; key order touches each page once per batch.
    """

    keyed: list[tuple[bytes, Fact]]  # batch order
    stones: dict[bytes, bytes]  # tombstone -> subject key
    subjects: list[tuple[bytes, str, bytes, str]]  # key order
    where: dict[bytes, tuple[int, str]]  # key -> (index, field) of its last adding fact
    added: dict[bytes, tuple[int, int]]  # key -> (bases, contribution years) its facts add


def _prepare(ctx: NodeContext, facts: Sequence[Fact], now_iso: str) -> _Prepared:
    records = ctx.records
    secret = ctx.secrets.storage_secret
    keyed = [(records.key_of(f.id_number), f) for f in facts]
    first_id: dict[bytes, str] = {}
    for k, f in keyed:
        first_id.setdefault(k, f.id_number)
    stones = {tombstone(secret, k): k for k in first_id}
    subjects = [
        (k, birth_date(first_id[k]).isoformat(), records.seal_id(first_id[k], k), now_iso)
        for k in sorted(first_id)
    ]
    where: dict[bytes, tuple[int, str]] = {}
    added: dict[bytes, tuple[int, int]] = {}
    for i, (k, f) in enumerate(keyed):
        if f.kind in _ADDS:
            where[k] = (i, f"facts[{i}].residence_kind")
            bases, years = added.get(k, (0, 0))
            year = f.residence_kind in CONTRIBUTION_KINDS
            added[k] = (bases + (not year), years + year)
    return _Prepared(keyed, stones, subjects, where, added)


def _deregistered(conn: Connection, stones: dict[bytes, bytes]) -> set[bytes]:
    """The subject keys among ``stones`` (tombstone -> key) of deregistered people (H2)."""
    return {stones[s] for s in store.deregistered_tombstones(conn, list(stones))}


def _may_pass_bound(
    stored: dict[bytes, tuple[int, int]], added: dict[bytes, tuple[int, int]]
) -> list[bytes]:
    """Keys whose current residences could exceed a bound after the batch.

    An adding fact opens at most one current row (a new one, or an ended one
    re-opened) and other facts only end rows, so a person's count after the
    batch is at most the count before plus their adding facts: only those
    whose sum passes a bound need counting again.
    """
    out: list[bytes] = []
    for key, (bases, years) in added.items():
        was_bases, was_years = stored.get(key, (0, 0))
        if was_bases + bases > RESIDENCES_MAX or was_years + years > CONTRIBUTION_YEARS_MAX:
            out.append(key)
    return out


async def apply_facts(
    ctx: NodeContext,
    batch_id: str,
    submitted_by: str,
    facts: Sequence[Fact],
    *,
    content_sha256: bytes,
) -> BatchResult:
    """Store a validated fact batch in one unit (see the module invariants)."""
    now_iso = ctx.now_iso()
    prep = _prepare(ctx, facts, now_iso)  # CPU work before the unit

    def fn(rtx: RightsTx) -> BatchResult:
        conn = rtx.conn
        replayed = replayed_batch(conn, submitted_by, batch_id, content_sha256)
        if replayed is not None:
            return replayed
        gone = _deregistered(conn, prep.stones)
        kept, subjects, where, added = prep.keyed, prep.subjects, prep.where, prep.added
        if gone:
            kept = [(k, f) for k, f in kept if k not in gone]
            subjects = [row for row in subjects if row[0] not in gone]
            where = {k: v for k, v in where.items() if k not in gone}
            added = {k: v for k, v in added.items() if k not in gone}
        store.insert_subjects(conn, subjects)
        # residences per person are bounded as stored, ended ones not counted
        before = residence_counts(conn, where)
        for kind, run in itertools.groupby(kept, key=lambda kf: kf[1].kind):
            # key order within a run of one kind (stable: one person's facts keep theirs)
            _apply_run(conn, kind, sorted(run, key=lambda kf: kf[0]))
        near = _may_pass_bound(before, added)
        after = residence_counts(conn, near) if near else {}
        over = residence_bound_error(batch_id, before, after, where)
        if over is not None:
            raise over  # the unit rolls back: nothing of the batch is stored
        store.insert_facts(
            conn,
            [
                (submitted_by, batch_id, seq, k, f.kind, f.residence_kind, f.on.isoformat())
                for seq, (k, f) in sorted(enumerate(kept), key=lambda sf: sf[1][0])
            ],
        )
        insert_batch(
            conn, batch_id, submitted_by, count=len(kept), sha256=content_sha256, at_iso=now_iso
        )
        ending = sorted({k for k, f in kept if f.kind in ENDING_KINDS})
        for key, state in registry_states(conn, ending).items():
            why = not_served_reason(state, rtx.scheme, rtx.today)
            if why is not None:
                _end_consents(rtx, key, *why)
        return BatchResult(batch_id, len(kept), False, content_sha256)

    return await run_rights_unit(ctx, fn)


async def state_of(ctx: NodeContext, key: bytes) -> RegistryState | None:
    """:func:`registry_state` in a read unit."""
    return await ctx.db.read_unit(lambda conn: registry_state(conn, key))


async def require_served(ctx: NodeContext, key: bytes, *, self_query: bool) -> None:
    """Refuse a person the node no longer serves, naming why.

    NOT_FOUND ``SUBJECT_UNKNOWN`` when neither the registry nor any record holds
    them; FAILED_PRECONDITION ``SUBJECT_DECEASED`` / ``SUBJECT_NOT_RESIDENT`` /
    ``SUBJECT_NOT_ELIGIBLE`` (:func:`not_served_reason`).  A self-query
    (``self_query``) is refused only after a death: a former resident may still
    read their report and why they are no longer scored (H12).
    """
    state = await state_of(ctx, key)
    if state is None:
        raise NotFoundError(
            "SUBJECT_UNKNOWN", "no registry entry or records are held for this person"
        )
    why = not_served_reason(state, ctx.scheme, ctx.today())
    if why is None or (self_query and why[0] != "SUBJECT_DECEASED"):
        return
    raise FailedPreconditionError(why[0], why[1], field="subject")

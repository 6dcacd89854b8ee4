"""Repository of subjects, credit records, source batches and collection consents.

Invariants:

* a record batch is written in ONE transaction together with its
  ``source_batches`` row; any refusal (a record already stored under another
  batch, a market record without the person's written collection consent —
  H7, N4) raises before COMMIT, so a batch is stored whole or not at all;
* the H7 gate keys on the submitting department, never on a record's
  self-declared fields alone: a market record counts as consented only if a
  collection consent for the subject was recorded BY the submitter
  (``recorded_by = submitted_by``) with the record's ``source`` (or the
  submitter's identity) as collector.  The service binds ``source`` to the
  caller and lets a department record consents to itself only,
  so one department's consent never admits another's records;
* batch ids and record ids belong to the submitting department:
  ``source_batches`` is keyed by (``submitted_by``, ``batch_id``) and a record
  by (``submitted_by``, ``record_id``), so two departments may use the same
  natural ids and one department's ids tell another nothing;
* a batch id is idempotent per department: the same id with the same content
  from the same department is a replay (nothing written, same answer); the same
  id with other content is refused (``BATCH_ID_REUSED``);
* subjects are keyed by ``subject_key``; the ID number is stored only sealed
  with AES-GCM (aad = subject key) and is never returned by this module;
* no per-row awaits: rows are written with ``executemany`` and looked up with
  chunked ``IN`` queries;
* a person who deregistered (a tombstone in ``deregistrations``, H2) is not
  stored again: their records are refused (``SUBJECT_DEREGISTERED``) until
  they register again;
* timeliness (N7): a record shared more than ``share_days`` working days after
  it was formed is accepted and stored with ``share_due`` (the last day it
  should have been shared by), which the review report lists per source.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from keys import Sealer, subject_key
from node.core._bounds import CONTRIBUTION_KINDS, CONTRIBUTION_YEARS_MAX, RESIDENCES_MAX
from node.core._errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
)
from node.pb.v1 import node_pb2
from node.store._db import Database
from scoring import CreditRecord, Provenance, Residence, Subject, WorkingDayCalendar, birth_date

__all__ = [
    "BatchResult",
    "RecordsRepository",
    "StoredRecord",
    "SubjectFacts",
    "batch_rejection",
    "load_records",
    "load_subject",
    "record_rows",
    "records_of_rows",
    "residence_bound_error",
    "residence_counts",
    "subject_of_rows",
    "subject_rows",
    "tombstone",
]

CHUNK = 500
Problem = tuple[int, str, str, str, str]  # index, record_id, field, code, message
SHARE_WORKING_DAYS = 15  # N7: departments share information within 15 working days
REJECTION_KEY = "huxin-batch-rejection-bin"
#: Bounds of the rejection trailer.  gRPC clients refuse trailing metadata
#: over 16 KiB and may refuse it at random above 8 KiB (``grpc.max_metadata_size``), so
#: the serialised ``BatchRejection`` stays under 6 KiB, leaving room for the other trailers.
MAX_LISTED_REJECTIONS = 100
MAX_REJECTION_BYTES = 6144
MAX_SUMMARY_GROUPS = 32


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A stored record as the engine reads it (no ID number)."""

    record_id: str
    source: str
    category: str
    act_id: str
    recognised_on: date
    valid_until: date | None
    level: str | None
    severity: str | None
    legal_document: str | None
    status: str
    flags: frozenset[str]
    provenance: str = "public"


@dataclass(frozen=True, slots=True)
class SubjectFacts:
    """Residence facts a source supplies for one subject (keyed by ID at intake)."""

    id_number: str
    residence: tuple[Residence, ...] = ()
    full_civil_capacity: bool = True


@dataclass(frozen=True, slots=True)
class BatchResult:
    batch_id: str
    accepted: int
    replayed: bool
    sha256: bytes


def replayed_batch(
    conn: sqlite3.Connection, submitted_by: str, batch_id: str, content_sha256: bytes
) -> BatchResult | None:
    """The result of a batch this source already committed under ``batch_id``, or None.

    Batches are idempotent per (source, batch id): the same content replays the
    first result; other content under a used id is ``BATCH_ID_REUSED``."""
    prior = conn.execute(
        "SELECT records, sha256 FROM source_batches WHERE submitted_by = ? AND batch_id = ?",
        (submitted_by, batch_id),
    ).fetchone()
    if prior is None:
        return None
    if bytes(prior[1]) != content_sha256:
        raise AlreadyExistsError(
            "BATCH_ID_REUSED", "this batch id was committed with other content", field="batch_id"
        )
    return BatchResult(batch_id, int(prior[0]), True, content_sha256)


def batch_rejection(
    batch_id: str, problems: Sequence[tuple[int, str, str, str, str]]
) -> InvalidArgumentError:
    """The error refusing a whole batch, with per-record reasons in trailing metadata.

    The trailer is bounded whatever the batch size: at most
    :data:`MAX_LISTED_REJECTIONS` problems in record order and at most
    :data:`MAX_REJECTION_BYTES` serialised (a long ``record_id``/message is cut),
    plus ``rejected_total``, ``truncated``, ``records_refused`` and a count per
    (field, code).  Clients refuse trailing metadata over 16 KiB.
    """
    groups: dict[tuple[str, str], int] = {}
    for _i, _rid, field, code, _message in problems:
        groups[(field, code)] = groups.get((field, code), 0) + 1
    ordered = sorted(groups.items(), key=lambda g: (-g[1], g[0]))[:MAX_SUMMARY_GROUPS]
    msg = node_pb2.BatchRejection(
        batch_id=batch_id,
        rejected_total=len(problems),
        records_refused=len({p[0] for p in problems}),
        summary=[
            node_pb2.RejectionCount(field=field[:48], code=code[:48], count=n)
            for (field, code), n in ordered
        ],
    )
    size = msg.ByteSize()
    for i, rid, field, code, message in problems[:MAX_LISTED_REJECTIONS]:
        entry = node_pb2.RecordRejection(
            index=i, record_id=rid[:128], field=field[:48], code=code[:48], message=message[:256]
        )
        cost = entry.ByteSize() + 4  # tag and length prefix
        if size + cost > MAX_REJECTION_BYTES:
            break
        msg.rejections.append(entry)
        size += cost
    msg.truncated = len(msg.rejections) < len(problems) or len(ordered) < len(groups)
    first = problems[0]
    top = ", ".join(f"{code} ({field}) x{n}" for (field, code), n in ordered[:3])
    return InvalidArgumentError(
        "BATCH_REJECTED",
        f"{len(problems)} problem(s) in {msg.records_refused} record(s), nothing stored; "
        f"first: #{first[0]} {first[3]}; most common: {top}",
        field="records",
        details=((REJECTION_KEY, msg.SerializeToString()),),
    )


def residence_counts(
    conn: sqlite3.Connection, keys: Iterable[bytes]
) -> dict[bytes, tuple[int, int]]:
    """Each person's CURRENT (not ended) residence rows, stored, inside the caller's unit:
    (residence bases, contribution years).  A key with none is absent."""
    kinds = sorted(CONTRIBUTION_KINDS)
    marks_k = ",".join("?" * len(kinds))
    out: dict[bytes, tuple[int, int]] = {}
    for part in _chunks(sorted(set(keys))):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            # CASE, not a summed comparison: PostgreSQL does not add booleans
            f"SELECT subject_key, SUM(CASE WHEN kind IN ({marks_k}) THEN 0 ELSE 1 END), "
            f"SUM(CASE WHEN kind IN ({marks_k}) THEN 1 ELSE 0 END) "
            f"FROM residences WHERE ended_on IS NULL AND subject_key IN ({marks}) "
            "GROUP BY subject_key",
            (*kinds, *kinds, *part),
        ).fetchall()
        out.update((bytes(k), (int(b), int(c))) for k, b, c in rows)
    return out


def residence_bound_error(
    batch_id: str,
    stored: dict[bytes, tuple[int, int]],
    after: dict[bytes, tuple[int, int]],
    where: dict[bytes, tuple[int, str]],
) -> InvalidArgumentError | None:
    """The refusal when a write left a person over the stored residence bound.

    ``stored``/``after`` are :func:`residence_counts` around the write, in ONE unit;
    ``where`` maps a key to (index, field) of the request item that added to it.  A
    person is over when their current residence bases exceed :data:`RESIDENCES_MAX`
    (contribution years: :data:`CONTRIBUTION_YEARS_MAX`) AND the write added some, so
    a person stored over the bound before it existed may still be re-sent unchanged.
    INVALID_ARGUMENT ``TOO_MANY_ITEMS`` naming the field, with the batch-rejection
    trailer listing it; the caller raises it inside the unit, so nothing is stored."""
    for key in sorted(after, key=lambda k: where.get(k, (0, ""))[0]):
        bases, years = after[key]
        was = stored.get(key, (0, 0))
        if bases > RESIDENCES_MAX and bases > was[0]:
            what = f"at most {RESIDENCES_MAX} current residences per person, stored ones included"
        elif years > CONTRIBUTION_YEARS_MAX and years > was[1]:
            what = f"at most {CONTRIBUTION_YEARS_MAX} contribution years per person, stored ones included"  # fmt: skip
        else:
            continue
        index, field = where.get(key, (0, "residence"))
        trailer = batch_rejection(batch_id, [(index, "", field, "TOO_MANY_ITEMS", what)])
        return InvalidArgumentError(
            "TOO_MANY_ITEMS", f"{what}; nothing stored", field=field, details=trailer.details
        )
    return None


def tombstone(storage_secret: bytes, subject_key: bytes) -> bytes:
    """What a deregistration leaves: unlinkable without the region secret AND the ID (H2)."""
    return hmac.new(storage_secret, b"huxin-deregistered" + subject_key, hashlib.sha256).digest()


def _chunks(items: Sequence[bytes] | Sequence[str]) -> Iterable[Sequence[bytes] | Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _d(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


class RecordsRepository:
    def __init__(
        self,
        db: Database,
        storage_secret: bytes,
        sealer: Sealer,
        calendar: WorkingDayCalendar | None = None,
    ) -> None:
        self._db = db
        self._secret = storage_secret
        self._sealer = sealer
        self._calendar = calendar or WorkingDayCalendar()

    def share_due(self, records: Sequence[CreditRecord], today: date) -> list[str | None]:
        """N7: per record, the day it should have been shared by if it is late, else None."""
        cache: dict[date, date] = {}
        out: list[str | None] = []
        for r in records:
            formed = r.recognised_on
            if (today - formed).days <= SHARE_WORKING_DAYS:  # working days <= calendar days
                out.append(None)
                continue
            due = cache.get(formed)
            if due is None:
                due = cache[formed] = self._calendar.add_working_days(formed, SHARE_WORKING_DAYS)
            out.append(due.isoformat() if today > due else None)
        return out

    def key_of(self, id_number: str) -> bytes:
        return subject_key(self._secret, id_number)

    def seal_id(self, id_number: str, key: bytes) -> bytes:
        """The ID number as stored: sealed with AES-GCM, aad = its subject key."""
        return self._sealer.seal(id_number.encode("ascii"), aad=key)

    async def submit_batch(
        self,
        batch_id: str,
        submitted_by: str,
        records: Sequence[CreditRecord],
        subjects: Sequence[SubjectFacts],
        *,
        content_sha256: bytes,
        now_iso: str,
        checks: Sequence[Callable[[sqlite3.Connection], list[Problem]]] = (),
    ) -> BatchResult:
        """Store a validated batch whole or refuse it (see the module invariants).

        ``checks`` run inside the unit after the repository's own refusals; any
        problem they return refuses the batch with the others (the H10 listing
        check reads the listings in the same snapshot as the write).
        """
        # CPU work (HMAC, sealing) before the transaction.
        keys = [self.key_of(r.subject_id) for r in records]
        late = self.share_due(records, date.fromisoformat(now_iso[:10]))
        ids: dict[bytes, str] = {}
        for r, k in zip(records, keys, strict=True):
            ids.setdefault(k, r.subject_id)
        facts: dict[bytes, SubjectFacts] = {}
        where: dict[bytes, tuple[int, str]] = {}  # the subjects[i] a bound refusal names
        for i, f in enumerate(subjects):
            k = self.key_of(f.id_number)
            facts[k] = f
            ids.setdefault(k, f.id_number)
            if f.residence:
                where[k] = (i, f"subjects[{i}].residence")
        subject_rows = [
            (
                k,
                birth_date(idn).isoformat(),
                int(facts[k].full_civil_capacity) if k in facts else 1,
                self._sealer.seal(idn.encode("ascii"), aad=k),
                now_iso,
            )
            for k, idn in ids.items()
        ]
        residence_rows = [
            (k, res.kind, res.since.isoformat()) for k, f in facts.items() for res in f.residence
        ]
        record_rows = [
            (
                k,
                r.record_id,
                r.source,
                r.category,
                r.polarity.value,
                r.act_id,
                r.recognised_on.isoformat(),
                None if r.valid_until is None else r.valid_until.isoformat(),
                r.level,
                r.severity,
                r.legal_document,
                r.status.value,
                r.provenance.value,
                ",".join(sorted(r.flags)),
                batch_id,
                now_iso,
                due,
                submitted_by,
                *_legal_columns(r),
            )
            for r, k, due in zip(records, keys, late, strict=True)
        ]
        stones = {tombstone(self._secret, k): k for k in ids}

        def unit(conn: sqlite3.Connection) -> BatchResult:
            replayed = replayed_batch(conn, submitted_by, batch_id, content_sha256)
            if replayed is not None:
                return replayed
            gone = _deregistered(conn, stones)
            problems = _refusals(conn, records, keys, gone, submitted_by)
            for check in checks:
                problems += check(conn)
            if problems:
                problems.sort(key=lambda p: p[0])
                raise batch_rejection(batch_id, problems)
            if gone:
                nonlocal subject_rows, residence_rows
                subject_rows = [r for r in subject_rows if r[0] not in gone]
                residence_rows = [r for r in residence_rows if r[0] not in gone]
            conn.executemany(
                "INSERT INTO subjects (subject_key, birth_date, full_civil_capacity, id_sealed, "
                "registered_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_key) DO UPDATE SET "
                "full_civil_capacity = excluded.full_civil_capacity",
                subject_rows,
            )
            # residences per person are bounded as STORED, not per request
            touched = {r[0] for r in residence_rows}
            before = residence_counts(conn, touched)
            conn.executemany(
                "INSERT INTO residences (subject_key, kind, since) VALUES (?, ?, ?) "
                "ON CONFLICT (subject_key, kind, since) DO NOTHING",
                residence_rows,
            )
            over = residence_bound_error(batch_id, before, residence_counts(conn, touched), where)
            if over is not None:
                raise over  # the unit rolls back: nothing of the batch is stored
            conn.executemany(
                "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id, "
                "recognised_on, valid_until, level, severity, legal_document, status, provenance, "
                "flags, batch_id, submitted_at, share_due, submitted_by, legal_issuer, "
                "legal_issued_on, organisation_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                record_rows,
            )
            conn.execute(
                "INSERT INTO source_batches (batch_id, submitted_by, records, sha256, committed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch_id, submitted_by, len(records), content_sha256, now_iso),
            )
            return BatchResult(batch_id, len(records), False, content_sha256)

        # One unit of work: runs to COMMIT or ROLLBACK even if the caller goes away.
        return await self._db.write_unit(unit)

    async def record_collection_consent(
        self,
        id_number: str,
        collector: str,
        *,
        stated_use: str,
        document_sha256: bytes,
        signed_on: date,
        recorded_by: str,
        now_iso: str,
    ) -> str:
        k = self.key_of(id_number)
        ref = hashlib.sha256(k + collector.encode() + document_sha256).hexdigest()[:32]
        sealed = self._sealer.seal(id_number.encode("ascii"), aad=k)
        stone = tombstone(self._secret, k)

        def unit(conn: sqlite3.Connection) -> None:
            if conn.execute(
                "SELECT 1 FROM deregistrations WHERE tombstone = ?", (stone,)
            ).fetchone():
                raise FailedPreconditionError(
                    "SUBJECT_DEREGISTERED", "the person deregistered (H2)", field="subject_id"
                )
            conn.execute(
                "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (subject_key) DO NOTHING",
                (k, birth_date(id_number).isoformat(), sealed, now_iso),
            )
            conn.execute(
                "INSERT INTO collection_consents (consent_ref, subject_key, collector, "
                "stated_use, document_sha256, signed_on, recorded_by, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (consent_ref) DO NOTHING",
                (
                    ref,
                    k,
                    collector,
                    stated_use,
                    document_sha256,
                    signed_on.isoformat(),
                    recorded_by,
                    now_iso,
                ),
            )

        # one unit of work on the writer thread; a caller cancelled while it waits
        # records nothing
        await self._db.write_unit(unit, drop_if_cancelled=True)
        return ref

    async def subject(self, key: bytes) -> Subject | None:
        return await self._db.read_unit(lambda conn: load_subject(conn, key))

    async def records_of(self, key: bytes) -> list[StoredRecord]:
        return await self._db.read_unit(lambda conn: load_records(conn, key))


def _legal_columns(r: CreditRecord) -> tuple[str | None, str | None, str | None]:
    """(issuer, issue date, organisation code) of an H10 reference, kept for the trail."""
    ref = r.legal_reference
    if ref is None:
        return None, None, None
    return ref.issuing_body, ref.issued_on.isoformat(), ref.organisation_code


def _deregistered(conn: sqlite3.Connection, stones: dict[bytes, bytes]) -> set[bytes]:
    """Subject keys (of ``stones``: tombstone -> key) of people who deregistered."""
    gone: set[bytes] = set()
    items = sorted(stones)
    for part in _chunks(items):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT tombstone FROM deregistrations WHERE tombstone IN ({marks})", part
        ).fetchall()
        gone.update(stones[bytes(r[0])] for r in rows)
    return gone


def _refusals(
    conn: sqlite3.Connection,
    records: Sequence[CreditRecord],
    keys: Sequence[bytes],
    gone: set[bytes],
    submitted_by: str,
) -> list[tuple[int, str, str, str, str]]:
    problems: list[tuple[int, str, str, str, str]] = []
    existing: set[str] = set()
    rids = [r.record_id for r in records]
    for part in _chunks(rids):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT record_id FROM records WHERE submitted_by = ? AND record_id IN ({marks})",
            (submitted_by, *part),
        ).fetchall()
        existing.update(row[0] for row in rows)
    market = [
        (i, k)
        for i, (r, k) in enumerate(zip(records, keys, strict=True))
        if r.provenance is Provenance.MARKET
    ]
    consented: set[tuple[bytes, str]] = set()
    if market:
        mkeys = sorted({k for _, k in market})
        for part in _chunks(mkeys):
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                "SELECT subject_key, collector FROM collection_consents "
                f"WHERE recorded_by = ? AND subject_key IN ({marks})",
                (submitted_by, *part),
            ).fetchall()
            consented.update((bytes(a), b) for a, b in rows)
    market_idx = {i for i, _ in market}
    for i, (r, k) in enumerate(zip(records, keys, strict=True)):
        if k in gone:
            problems.append(
                (
                    i,
                    r.record_id,
                    "subject_id",
                    "SUBJECT_DEREGISTERED",
                    "the person deregistered; nothing is stored until they register again (H2)",
                )
            )
        elif r.record_id in existing:
            problems.append(
                (
                    i,
                    r.record_id,
                    "record_id",
                    "RECORD_EXISTS",
                    "this department stored a record with this id",
                )
            )
        elif (
            i in market_idx
            and (k, r.source) not in consented
            and (k, submitted_by) not in consented
        ):
            problems.append(
                (
                    i,
                    r.record_id,
                    "provenance",
                    "COLLECTION_CONSENT_MISSING",
                    "non-public record without the person's written collection consent "
                    f"to {r.source!r}, recorded by this department (H7, N4)",
                )
            )
    return problems


def load_subject(conn: sqlite3.Connection, key: bytes) -> Subject | None:
    """The engine's view of a registered, living subject with its current residences
    (sync: run inside a unit of work); None when unknown, deregistered or dead (a
    death keeps the rows, docs/adr/0508)."""
    row = conn.execute(
        "SELECT birth_date, full_civil_capacity FROM subjects "
        "WHERE subject_key = ? AND deregistered_at IS NULL AND died_on IS NULL",
        (key,),
    ).fetchone()
    if row is None:
        return None
    res = conn.execute(
        "SELECT kind, since FROM residences WHERE subject_key = ? AND ended_on IS NULL "
        "ORDER BY since",
        (key,),
    ).fetchall()
    return Subject(
        date.fromisoformat(row[0]),
        tuple(Residence(kind, date.fromisoformat(since)) for kind, since in res),
        bool(row[1]),
    )


def load_records(conn: sqlite3.Connection, key: bytes) -> list[StoredRecord]:
    return records_of_rows(record_rows(conn, key))


_RECORD_ROWS = (
    "SELECT record_id, source, category, act_id, recognised_on, valid_until, level, "
    "severity, legal_document, status, flags, provenance FROM records WHERE subject_key = ?"
)
# A registered subject and its residences in one statement (no residence: one row of NULLs).
_SUBJECT_ROWS = (
    "SELECT s.birth_date, s.full_civil_capacity, r.kind, r.since FROM subjects AS s "
    "LEFT JOIN residences AS r ON r.subject_key = s.subject_key AND r.ended_on IS NULL "
    "WHERE s.subject_key = ? AND s.deregistered_at IS NULL AND s.died_on IS NULL "
    "ORDER BY r.since, r.kind"
)


def record_rows(conn: sqlite3.Connection, key: bytes) -> tuple[tuple[Any, ...], ...]:
    """The subject's record rows as stored (sync, inside a unit of work); with
    :func:`records_of_rows` they give exactly :func:`load_records`."""
    return tuple(conn.execute(_RECORD_ROWS, (key,)).fetchall())


def records_of_rows(rows: Sequence[Sequence[Any]]) -> list[StoredRecord]:
    return [
        StoredRecord(
            record_id=r[0],
            source=r[1],
            category=r[2],
            act_id=r[3],
            recognised_on=date.fromisoformat(r[4]),
            valid_until=_d(r[5]),
            level=r[6],
            severity=r[7],
            legal_document=r[8],
            status=r[9],
            flags=frozenset(f for f in r[10].split(",") if f),
            provenance=r[11],
        )
        for r in rows
    ]


def subject_rows(conn: sqlite3.Connection, key: bytes) -> tuple[tuple[Any, ...], ...]:
    """A registered subject's row joined with its residences, in one statement (empty
    when unknown or deregistered); :func:`subject_of_rows` builds the engine's view:
    :func:`load_subject`'s, with residences of one date ordered by kind."""
    return tuple(conn.execute(_SUBJECT_ROWS, (key,)).fetchall())


def subject_of_rows(rows: Sequence[Sequence[Any]]) -> Subject | None:
    if not rows:
        return None
    first = rows[0]
    return Subject(
        date.fromisoformat(first[0]),
        tuple(Residence(r[2], date.fromisoformat(r[3])) for r in rows if r[2] is not None),
        bool(first[1]),
    )

"""Rights events as units of work: rescoring at once, attestation status, notifications.

A rights event (repair, correction, masking, a verified supplement, a
deregistration) changes what counts for a person.  Each one runs as ONE write
unit (:func:`run_rights_unit`): the record change, the grade recomputed at
once (H16: "updated promptly", not only at the next monthly run) as a correction of
the published month (:func:`node.monthly.correct_published`), the status
of the person's issued attestations, the citizen's notification and the
transparency-log entries commit together or not at all.

Invariants:

* the score is always recomputed with :func:`scoring.score` from the stored
  records (the rules live in the engine only), as of the published month's last
  day; the correction (with its cause) is appended to the published grades, the
  month's original stays (docs/adr/0514);
* repair and correction mark the person's valid (and suspended) attestations
  SUPERSEDED: they carried the old grade; masking marks valid ones SUSPENDED
  (H15: pending investigation); lifting a mask restores suspended ones only
  when no other record of the person is still masked;
* a person who opted out (N3) is never rescored (no correction is published);
* notifications and log entries never contain an ID number; log entries
  carry the subject only as the log's pseudonymous ``subject_ref``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, TypeVar

from node.core._config import ConfigError, RightsConfig
from node.core._errors import NotFoundError
from node.monthly import correct_published
from node.pb.v1 import node_pb2
from node.store import Connection
from node.store import _rights as store
from node.store._consents import notify_subject
from node.store._optout import is_opted_out
from node.store._records import load_records, load_subject, tombstone
from node.store._translog import LogWrite
from scoring import (
    CalendarError,
    Scheme,
    ScoreResult,
    WorkingDayCalendar,
    parse_holiday_file,
    score,
)

if TYPE_CHECKING:
    from node.exchange._mapping import Mapper
    from node.rpc._context import NodeContext

__all__ = [
    "Grade",
    "RightsTx",
    "build_calendar",
    "grade_change_proto",
    "run_rights_unit",
    "tombstone",
]

T = TypeVar("T")
MAX_MESSAGE = 512


def build_calendar(config: RightsConfig) -> WorkingDayCalendar:
    """The node's working-day calendar: chinese-calendar plus operator holiday files."""
    cal = WorkingDayCalendar()
    for path in config.holiday_files:
        try:
            cal = cal.with_year(parse_holiday_file(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError("rights.holiday_files", f"cannot read {path}: {exc}") from None
        except CalendarError as exc:
            raise ConfigError("rights.holiday_files", f"{path}: {exc}") from None
    return cal


@dataclass(frozen=True, slots=True)
class Grade:
    before: str | None
    after: str | None
    scheme_version: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def grade_change_proto(g: Grade) -> node_pb2.GradeChange:
    return node_pb2.GradeChange(
        grade_before=g.before or "",
        grade_after=g.after or "",
        changed=g.changed,
        scheme_version=g.scheme_version,
    )


class RightsTx:
    """What a rights unit may do on the writer connection (runs on the writer thread)."""

    def __init__(
        self,
        conn: Connection,
        scheme: Scheme,
        today: date,
        now_s: int,
        now_iso: str,
        *,
        mapper: Mapper,
    ) -> None:
        self.conn = conn
        self.scheme = scheme
        self.mapper = mapper
        self.today = today
        self.now_s = now_s
        self.now_iso = now_iso
        self.logs: list[LogWrite] = []
        self.after_log: list[Callable[[Connection], object]] = []

    # -- reads -------------------------------------------------------------
    def score_of(self, key: bytes) -> ScoreResult | None:
        subject = load_subject(self.conn, key)
        if subject is None:
            return None
        return score(subject, load_records(self.conn, key), self.scheme, self.today, explain=False)

    def record_of(self, owner: str, record_id: str) -> tuple[bytes, str, str]:
        """(subject key, category, polarity) of the record ``owner`` filed as ``record_id``.

        Record ids belong to the filing department: another
        department's record and no record get the same NOT_FOUND answer.
        """
        found = store.record_of(self.conn, owner, record_id)
        if found is None:
            raise NotFoundError(
                "RECORD_NOT_FOUND", "no record with this id from this department", field="record_id"
            )
        return found

    # -- writes ------------------------------------------------------------
    def log(self, kind: str, key: bytes | None, *, requester: str = "", reason: str = "") -> None:
        self.logs.append(
            LogWrite(kind, self.now_s, key, requester=requester, reason=reason[:MAX_MESSAGE])
        )

    def notify(self, key: bytes, kind: str, message: str) -> None:
        notify_subject(self.conn, key, kind, message[:MAX_MESSAGE], self.now_iso)

    def set_record_status(
        self, owner: str, record_id: str, status: str, *, only_from: str | None = None
    ) -> bool:
        """Set the status of the record ``owner`` (its filing department) filed as ``record_id``."""
        return store.set_record_status(self.conn, owner, record_id, status, only_from)

    def mark(
        self, owner: str, record_id: str, status: str, *, route: str, note: str, by: str
    ) -> None:
        store.insert_mark(
            self.conn,
            owner,
            record_id,
            status,
            route=route,
            note=note[:MAX_MESSAGE],
            by=by,
            at_iso=self.now_iso,
        )

    def supersede(self, key: bytes) -> int:
        """The person's valid and suspended attestations carried the old grade."""
        return store.supersede_attestations(self.conn, key)

    def suspend(self, key: bytes) -> int:
        return store.suspend_attestations(self.conn, key)

    def unsuspend(self, key: bytes) -> int:
        if store.has_masked_record(self.conn, key):
            return 0
        return store.restore_suspended(self.conn, key)

    def rescore(self, key: bytes, cause: str) -> Grade:
        """Correct the person's published grade at once (H16), tell them when it moved.

        ``before``/``after`` are the published grades of the month the node publishes;
        both None when no month is published yet (the next run includes the change).
        A person who opted out (N3, :mod:`node.rights._optout`) is not scored:
        nothing is computed or published for them."""
        if is_opted_out(self.conn, key):
            return Grade(None, None, self.scheme.version)
        fixed = correct_published(self.conn, key, self.scheme, cause, self.now_iso)
        if fixed is None:
            return Grade(None, None, self.scheme.version)
        after = fixed.after
        # consents the corrected grade does not meet end here, never on a request;
        # imported here: node.disclosure reaches this module through node.population
        from node.disclosure import end_unmet_consents

        self.logs.extend(
            end_unmet_consents(
                self.conn, home=self.scheme, mapper=self.mapper, today=self.today,
                now=self.now_s, subjects=(key,),
            )
        )  # fmt: skip
        grade = Grade(fixed.prior, after.grade, self.scheme.version)
        if grade.changed:
            self.notify(
                key,
                "grade",
                f"after {cause} your published grade for {fixed.period} was corrected at once: "
                f"{grade.before or 'none'} -> {grade.after or 'none'} (score {after.score})",
            )
        return grade


async def run_rights_unit(ctx: NodeContext, fn: Callable[[RightsTx], T]) -> T:
    """Run ``fn`` in one committed write unit; its log entries commit with it."""
    log, mapper = ctx.log, ctx.mapper
    scheme, today, now_s, now_iso = ctx.scheme, ctx.today(), ctx.now_s(), ctx.now_iso()

    def unit(conn: Connection) -> tuple[T, int, list[bytes]]:
        rtx = RightsTx(conn, scheme, today, now_s, now_iso, mapper=mapper)
        result = fn(rtx)
        if not rtx.logs:
            return result, 0, []
        first, leaves = log.append_sync(conn, rtx.logs)
        for hook in rtx.after_log:
            hook(conn)
        return result, first, leaves

    def after(r: tuple[T, int, list[bytes]]) -> None:
        if r[2]:
            log.mirror(r[1], r[2])

    result, _first, _leaves = await ctx.db.write_unit(unit, after)
    return result

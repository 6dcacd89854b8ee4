"""``GetMyScore``: the citizen's own published grade with its explained report (H3, H12).

Invariants: the answer is the person's published entry of the month the node
publishes (its ``period``), never a live score; the explained report explains
exactly the published numbers:

* a correction (or a late publication) carries the report it was computed with;
* the run's own row is explained by scoring again as of the month's last day
  from the records submitted up to the run's ``records_through`` (a record's
  status changes only in a rights event, which publishes a correction, so the
  result is the run's); a person the run found not eligible is explained by the
  reason the run stored;
* should that score differ all the same (registry facts dated inside the month
  but filed after it was published, or a run made without ``records_through``),
  the node corrects the published month at once (cause :data:`FACTS_CHANGED`;
  the person is told when the grade moved) and serves the correction, rather than
  a report that does not add up.

Unknown or dead: as for every service of the node
(:func:`node.population.require_served`); opted out (N3): nothing is computed,
the answer says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.core._errors import NotFoundError
from node.monthly._explain import ineligible_report, report_of, score_result_proto
from node.monthly._published import (
    append_result,
    compute_as_of,
    entry_or_publish,
    entry_would_publish,
    not_published,
    require_run,
)
from node.pb.v1 import node_pb2, scoring_pb2
from node.population import require_served
from node.store import Connection
from node.store._monthly import (
    PublishedEntry,
    PublishedRun,
    notify,
    opted_out_at,
    published_entry,
    published_run,
)
from scoring import Scheme

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["FACTS_CHANGED", "published_entry_of", "self_query"]

FACTS_CHANGED = "registry facts about the month filed after it was published"


def _explained(
    conn: Connection, scheme: Scheme, run: PublishedRun, key: bytes
) -> scoring_pb2.ScoreResult | None:
    """The report of the person's published entry, or None when an entry must be written
    first (none yet, or the run's row does not add up)."""
    entry = published_entry(conn, run.run_id, key)
    if entry is None:
        return None
    if entry.report is not None:
        return report_of(entry.report)
    if not entry.eligible:
        return ineligible_report(scheme, run.as_of, entry.reason or "")
    result = compute_as_of(conn, key, scheme, run.as_of, run.records_through)
    if result is None or (result.eligible, result.score, result.grade) != (
        True,
        entry.score,
        entry.grade,
    ):
        return None
    return score_result_proto(result, explain=True)


async def self_query(ctx: NodeContext, key: bytes) -> node_pb2.MyScoreResponse:
    """The person's published score of the month the node publishes, explained."""
    scheme, today = ctx.scheme, ctx.today()  # read once: the run and report are of this version

    def read(
        conn: Connection,
    ) -> tuple[str | None, PublishedRun | None, scoring_pb2.ScoreResult | None]:
        since = opted_out_at(conn, key)
        run = published_run(conn, scheme.id, scheme.version, today)
        if since is not None or run is None:
            return since, run, None
        return None, run, _explained(conn, scheme, run, key)

    since, run, report = await ctx.db.read_unit(read)
    if since is not None:  # N3: nothing is computed for a person who asked not to be
        period = run.period if run is not None else ""
        return node_pb2.MyScoreResponse(period=period, opted_out=True, opted_out_at=since)
    if await ctx.records.subject(key) is None:  # the registry says why: unknown or dead
        await require_served(ctx, key, self_query=True)
        raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
    if run is None:
        raise not_published(scheme)
    if report is None:
        report = await _publish(ctx, scheme, run, key)
    return node_pb2.MyScoreResponse(result=report, period=run.period)


async def _publish(
    ctx: NodeContext, scheme: Scheme, run: PublishedRun, key: bytes
) -> scoring_pb2.ScoreResult:
    """Write the person's entry of ``run``: a late publication, or a correction when the
    run's row does not add up (the person is told when the grade moved)."""
    at = ctx.now_iso()

    def unit(conn: Connection) -> scoring_pb2.ScoreResult:
        report = _explained(conn, scheme, run, key)  # again: another call may have written it
        if report is not None:
            return report
        entry = published_entry(conn, run.run_id, key)
        if entry is None:
            written = entry_or_publish(conn, run, key, scheme, at)
        elif (
            result := compute_as_of(conn, key, scheme, run.as_of, run.records_through or at)
        ) is not None:  # the month's records as the run read them, the facts as they are now
            written = append_result(conn, run, key, result, cause=FACTS_CHANGED, at=at)
            if written.grade != entry.grade:
                notify(
                    conn, key,
                    f"your published grade for {run.period} was corrected ({FACTS_CHANGED}):"
                    f" {entry.grade or 'none'} -> {written.grade or 'none'}", at,
                )  # fmt: skip
        else:
            written = None
        if written is None or written.report is None:
            raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
        return report_of(written.report)

    return await ctx.db.write_unit(unit)


async def published_entry_of(ctx: NodeContext, key: bytes) -> PublishedEntry:
    """The person's published entry of the month the node publishes (what an attestation
    would carry, H3), for the node's own decisions such as whether a grant meets its
    scenario.  Read-only: an entry the month's run lacks is computed as a late
    publication would be, but not written (the request that discloses it publishes it).
    FAILED_PRECONDITION ``SCORE_NOT_PUBLISHED`` before any month; NOT_FOUND
    ``SUBJECT_UNKNOWN``."""
    scheme, today, at = ctx.scheme, ctx.today(), ctx.now_iso()

    def read(conn: Connection) -> PublishedEntry:
        entry = entry_would_publish(conn, require_run(conn, scheme, today), key, scheme, at)
        if entry is None:
            raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
        return entry

    return await ctx.db.read_unit(read)

"""The node runs its own monthly run (H3): once per month, after the month ends.

:class:`MonthlyScheduler` is a background task of a region node, in the style of
:class:`node.rights._scheduler.RightsScheduler`: time comes from the node's clock
(tests pass a :class:`~node.core._clock.ManualClock` and call
:meth:`MonthlyScheduler.run_once`, without sleeping); one step runs at a time (a
lock); an error is logged and the loop goes on.

Each step looks at the NEWEST month whose run is due ([schedule] monthly_day and
monthly_hour, UTC; :func:`node.monthly._due.due_period`) under the scheme version
in force, and runs it unless ``monthly_runs`` says it FINISHED (persisted: a
restart never runs a month twice; a node down at the due hour runs the month at
its first step after it).  A run is exactly ``huxin score publish``: the month
scored (:func:`node.monthly._batch.run_month`, resumable chunk by chunk, with the records
submitted before the step's second), then signed as Merkle batches and queued
for the hub (:func:`node.monthly._snapshots.sign_run`).  A run that fails is marked
``failed`` with its reason code and tried again ``retry_minutes`` later; one
stopped with the node stays ``running`` and resumes at the next start.
Progress (started, chunks and people done of the total, finished, failed) goes
to the structured log and to ``monthly_runs``, which ``huxin status`` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from node.core._observe import log_event
from node.monthly._batch import count_run_subjects, period_as_of, run_month
from node.monthly._due import due_period
from node.monthly._snapshots import sign_run, signer_from_config
from node.store import Connection, connect, offline_job, writer_turn
from node.store._monthly import (
    MonthKey,
    mark_failed,
    mark_finished,
    mark_started,
    monthly_run,
    run_progress,
)
from scoring import Scheme

if TYPE_CHECKING:
    from node.core._config import NodeConfig
    from node.core._config_storage import StorageConfig
    from node.core._secrets import NodeSecrets
    from node.rpc._context import NodeContext

__all__ = ["MonthlyOutcome", "MonthlyScheduler"]

PROGRESS_STEPS = 10  # progress lines per run (every tenth of its chunks)


class _Stopped(Exception):
    """The node is stopping: the run ends after its current chunk (and resumes later)."""


@dataclass(frozen=True, slots=True)
class MonthlyOutcome:
    period: str
    scheme: str  # id@version
    state: str  # finished | failed | interrupted
    people: int  # to be scored, counted when it started
    scored: int = 0
    eligible: int = 0
    batches: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Job:
    """What one run needs, handed to the thread that runs it."""

    config: NodeConfig
    secrets: NodeSecrets
    scheme: Scheme
    month: MonthKey
    now: datetime
    stopping: threading.Event
    people: int = 0


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")  # the form of records.submitted_at


class MonthlyScheduler:
    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._settings = ctx.config.schedule
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._job: asyncio.Future[MonthlyOutcome] | None = None
        self._stopping = threading.Event()
        self.outcomes: list[MonthlyOutcome] = []  # runs made by this process, oldest first

    async def run_once(self) -> MonthlyOutcome | None:
        """One step at the clock's current time: the run made, or None when none was due."""
        async with self._lock:
            return await self._step()

    async def _step(self) -> MonthlyOutcome | None:
        ctx, cfg = self._ctx, self._settings
        now = ctx.clock.now()
        scheme = ctx.scheme  # the version in force (ADR 0507): a new one republishes the month
        month = MonthKey(due_period(now, cfg.monthly_day, cfg.monthly_hour), scheme.id,
                         scheme.version)  # fmt: skip
        row = await ctx.db.read_unit(lambda c: monthly_run(c, month))
        if row is not None and row.state == "finished":
            return None
        if row is not None and row.state == "failed" and row.failed_at is not None:
            retry_at = datetime.fromisoformat(row.failed_at) + timedelta(minutes=cfg.retry_minutes)
            if now < retry_at:
                return None
        outcome = await self._run(_Job(ctx.config, ctx.secrets, scheme, month, now, self._stopping))
        self.outcomes.append(outcome)
        return outcome

    async def _run(self, job: _Job) -> MonthlyOutcome:
        ctx, month, name = self._ctx, job.month, job.scheme.key
        people = await asyncio.to_thread(_count, job.config.storage, month.period)
        job = replace(job, people=people)
        started = _iso(job.now)
        await ctx.db.write_unit(lambda c: mark_started(c, month, people=people, at=started))
        log_event("monthly run started", period=month.period, scheme=name, people=people)
        running = asyncio.ensure_future(asyncio.to_thread(_execute, job))
        self._job = running
        try:
            outcome = await asyncio.shield(running)
        except _Stopped:
            log_event("monthly run interrupted", period=month.period, scheme=name)
            return MonthlyOutcome(month.period, name, "interrupted", people)
        except Exception as exc:  # a coded domain error, a storage error, anything: retried
            code = str(getattr(exc, "code", "") or type(exc).__name__)
            at = _iso(ctx.clock.now())
            await ctx.db.write_unit(lambda c: mark_failed(c, month, error=code, at=at))
            log_event("monthly run failed", 40, period=month.period, scheme=name, error=code)
            return MonthlyOutcome(month.period, name, "failed", people, error=code)
        finally:
            self._job = None
        at = _iso(ctx.clock.now())
        await self._finish(month, at)
        log_event(
            "monthly run finished", period=month.period, scheme=name, people=people,
            scored=outcome.scored, eligible=outcome.eligible, batches=outcome.batches,
        )  # fmt: skip
        return outcome

    async def _finish(self, month: MonthKey, at: str) -> None:
        """Mark the run finished and, in the same unit, end every consent whose person's
        newly published grade does not meet its scenario (H14, N14): the consent
        ends with the publication, never on a relying party's request."""
        from node.disclosure import end_unmet_consents  # node.disclosure imports this room

        ctx = self._ctx
        log, scheme, mapper = ctx.log, ctx.scheme, ctx.mapper
        today, now = ctx.today(), ctx.now_s()

        def unit(conn: Connection) -> tuple[int, list[bytes]]:
            mark_finished(conn, month, at)
            ended = end_unmet_consents(conn, home=scheme, mapper=mapper, today=today, now=now)
            return log.append_sync(conn, ended) if ended else (0, [])

        def after(r: tuple[int, list[bytes]]) -> None:
            if r[1]:
                log.mirror(r[0], r[1])

        await ctx.db.write_unit(unit, after)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep running; the next step tries again
                log_event("monthly scheduler step failed", 40, exc=type(exc).__name__)
            await asyncio.sleep(self._settings.interval_seconds)

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop the loop; a run in progress ends after its current chunk (it resumes at
        the next start) before this returns, so nothing writes after the node closed."""
        self._stopping.set()
        job = self._job  # before the cancel: the cancelled step forgets it
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if job is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await job


def _count(db: StorageConfig, period: str) -> int:
    conn = connect(db, readonly=True)
    try:
        return count_run_subjects(conn, period_as_of(period))
    finally:
        conn.close()


def _progress(job: _Job) -> Callable[[int, int], None]:
    """run_month's per-chunk callback: a log line every tenth of the run; stops on request."""
    logged = [-1]
    db, month = job.config.storage, job.month

    def progress(done: int, total: int) -> None:
        step = done * PROGRESS_STEPS // max(total, 1)
        if step != logged[0]:
            logged[0] = step
            conn = connect(db, readonly=True)
            try:
                _, _, scored = run_progress(conn, month)
            finally:
                conn.close()
            log_event(
                "monthly run progress", period=month.period, scheme=job.scheme.key,
                chunks_done=done, chunks=total, people_done=scored, people=job.people,
            )  # fmt: skip
        if job.stopping.is_set():
            raise _Stopped

    return progress


def _execute(job: _Job) -> MonthlyOutcome:
    """Score the month, then sign it and queue it for the hub (``huxin score publish``)."""
    config, month = job.config, job.month
    db = config.storage  # SQLite or PostgreSQL (issue 18)
    run = run_month(
        db,  # [storage] whole: its password_file reaches every connection (issue 18)
        job.scheme,
        month.period,
        workers=config.schedule.monthly_workers,
        progress=_progress(job),
        # records of this very second may still be arriving: the run reads those before it
        records_through=_iso(job.now - timedelta(seconds=1)),
    )
    signer = signer_from_config(config, job.secrets)
    with offline_job(db):  # restore refuses while the batches are written
        conn = connect(db, create=False)
        try:
            with writer_turn(db) as lock:
                signed = sign_run(conn, run.run_id, signer, int(job.now.timestamp()), lock=lock)
        finally:
            conn.close()
    return MonthlyOutcome(
        month.period, job.scheme.key, "finished", job.people, run.subjects, run.eligible,
        signed.batches,
    )  # fmt: skip

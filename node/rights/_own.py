"""A citizen's operations on their own data, as domain functions both channels call.

The gRPC ``CitizenService`` (:mod:`node.rpc._citizen`) and the HTTP/JSON API
(:mod:`node.http._api`) decode their request, authenticate the citizen their own
way and call these functions with the citizen's subject key; so the checks,
limits and reasons are the same on both channels (docs/adr/0606, 0800).

Invariants: a citizen sees and withdraws only their own consents (another's
consent id is NOT_FOUND ``CONSENT_NOT_FOUND``, never "forbidden", so ids cannot
be probed); a withdrawal commits together with its transparency-log entry, in
one unit of work that changes nothing when its call was cancelled while it
waited for the writer; every caller-chosen string and integer is bounded
(:mod:`node.core._bounds`); deregistration and opting out need ``confirm``
(INVALID_ARGUMENT ``NOT_CONFIRMED``), because each ends something at once.
"""

from __future__ import annotations

import asyncio

from node.catalogue import Publisher, Unlocks, catalogue_message, target_catalogue, unlocks
from node.core._bounds import (
    NAME_MAX,
    NOTE_MAX,
    RECORD_TEXT_MAX,
    REF_MAX,
    check_int,
    check_length,
    check_text,
)
from node.core._errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NodeError,
    NotFoundError,
)
from node.disclosure import recognised_for_threshold
from node.exchange._consent import state_of
from node.monthly._selfquery import self_query
from node.pb.v1 import node_pb2
from node.rights import _dereg as dereg
from node.rights import _objections as objections
from node.rights import _optout as optout
from node.rights import _repair as repair
from node.rpc._context import NodeContext
from node.store import Connection
from node.store._consents import ConsentRow, get_consent, withdraw_consent
from node.store._notifications import notifications_after
from node.store._translog import PAGE_DEFAULT, LogWrite

__all__ = [
    "PERIOD_MAX",
    "apply_for_repair",
    "consent_info",
    "consents_of",
    "deregister",
    "file_objection",
    "incentives_of",
    "notifications_of",
    "opt_out",
    "query_log",
    "withdraw",
]

PERIOD_MAX = 7  # YYYY-MM


def consent_info(row: ConsentRow, now: int) -> node_pb2.ConsentInfo:
    grant = node_pb2.ConsentGrant()
    grant.ParseFromString(row.grant_payload)  # our own signed bytes, from our database
    return node_pb2.ConsentInfo(
        grant=grant, state=state_of(row, now), uses=row.uses, withdrawn_at=row.withdrawn_at or 0
    )


async def consents_of(ctx: NodeContext, key: bytes) -> node_pb2.ListConsentsResponse:
    now = ctx.now_s()
    rows = await ctx.consents.of_subject(key)
    return node_pb2.ListConsentsResponse(consents=[consent_info(r, now) for r in rows])


async def withdraw(ctx: NodeContext, key: bytes, consent_id: str) -> node_pb2.ConsentInfo:
    """Withdraw one of the citizen's own consents, with its log entry (one unit)."""
    check_length("consent_id", consent_id, REF_MAX, required=True)
    now = ctx.now_s()
    log = ctx.log

    def unit(conn: Connection) -> tuple[ConsentRow, tuple[int, list[bytes]]]:
        row = get_consent(conn, consent_id)
        if row is None or row.subject_key != key:
            raise NotFoundError("CONSENT_NOT_FOUND", "no such consent", field="consent_id")
        if row.withdrawn_at is not None:
            raise FailedPreconditionError(
                "CONSENT_WITHDRAWN", "already withdrawn", field="consent_id"
            )
        withdraw_consent(conn, row.consent_id, now)
        logged = log.append_sync(
            conn,
            [
                LogWrite(
                    "consent_withdrawn",
                    now,
                    key,
                    consent_id=row.consent_id,
                    requester=row.audience,
                    purpose=row.purpose,
                )
            ],
        )
        after = get_consent(conn, row.consent_id)
        assert after is not None
        return after, logged

    # one unit of work: the log's tree mirrors the entry after COMMIT; a call
    # cancelled (its deadline passed) while it waited for the writer changes nothing
    updated, _ = await ctx.db.write_unit(unit, lambda r: log.mirror(*r[1]), drop_if_cancelled=True)
    return consent_info(updated, now)


async def query_log(
    ctx: NodeContext, key: bytes, start_index: int, page_size: int
) -> node_pb2.QueryLogResponse:
    """One page of the citizen's own entries (H16, N23): ``page_size`` 0 means
    ``PAGE_DEFAULT``, more than ``PAGE_MAX`` and a ``start_index`` past the log's
    end are INVALID_ARGUMENT; every proof of the page is against its checkpoint."""
    check_int("start_index", start_index)
    page = await ctx.log.page_for(
        key, ctx.now_s(), start=start_index, limit=page_size or PAGE_DEFAULT
    )
    return node_pb2.QueryLogResponse(
        entries=page.entries,
        checkpoint=page.checkpoint.to_proto(),
        next_start_index=page.next_start,
        more=page.more,
    )


async def file_objection(
    ctx: NodeContext, key: bytes, request: node_pb2.FileObjectionRequest
) -> node_pb2.ObjectionInfo:
    """An objection to a record of the citizen's, or to the published score (N21)."""
    if request.about_score:  # N21: the published score itself; the operator handles it
        for name in ("record_id", "source"):
            if getattr(request, name):
                raise InvalidArgumentError(
                    "INVALID_FIELD", "must be empty for an objection to the score", field=name
                )
        if request.about_handling:
            raise InvalidArgumentError(
                "INVALID_FIELD",
                "an objection to the score is the operator's already",
                field="about_handling",
            )
        check_length("period", request.period, PERIOD_MAX, required=True)
        check_text("reason", request.reason, NOTE_MAX)  # stored, told to the operator
        return await objections.file_score(ctx, key, request.period, request.reason)
    if request.period:
        raise InvalidArgumentError(
            "INVALID_FIELD", "only an objection to the score names a period", field="period"
        )
    check_length("record_id", request.record_id, RECORD_TEXT_MAX, required=True)
    check_text("reason", request.reason, NOTE_MAX)  # stored, told to the department
    check_length("source", request.source, NAME_MAX)
    return await objections.file(
        ctx, key, request.record_id, request.reason, request.about_handling, source=request.source
    )


async def apply_for_repair(
    ctx: NodeContext, key: bytes, request: node_pb2.RepairApplicationRequest
) -> node_pb2.RepairApplicationInfo:
    """A credit-repair application for one of the citizen's records (N22)."""
    check_length("record_id", request.record_id, RECORD_TEXT_MAX, required=True)
    check_length("source", request.source, NAME_MAX)
    check_length("route", request.route, NAME_MAX, required=True)
    check_text("statement", request.statement, NOTE_MAX)  # stored, told to the department
    return await repair.apply(ctx, key, request)


async def notifications_of(
    ctx: NodeContext, key: bytes, after_id: int
) -> node_pb2.ListNotificationsResponse:
    check_int("after_id", after_id)
    rows = await notifications_after(ctx.db, key, after_id)
    return node_pb2.ListNotificationsResponse(
        notifications=[
            node_pb2.Notification(id=r[0], at=r[1], kind=r[2], message=r[3]) for r in rows
        ]
    )


async def deregister(ctx: NodeContext, key: bytes, confirm: bool) -> node_pb2.DeregisterResponse:
    if not confirm:
        raise InvalidArgumentError(
            "NOT_CONFIRMED",
            "deregistration deletes everything held about you; set confirm",
            field="confirm",
        )
    return await dereg.deregister(ctx, key)


async def opt_out(ctx: NodeContext, key: bytes, confirm: bool) -> node_pb2.OptOutResponse:
    if not confirm:
        raise InvalidArgumentError(
            "NOT_CONFIRMED",
            "opting out ends your consents and stops your score; set confirm",
            field="confirm",
        )
    return await optout.opt_out(ctx, key)


async def incentives_of(
    ctx: NodeContext, key: bytes, publisher: Publisher
) -> node_pb2.MyIncentivesResponse:
    """What the citizen's published grade qualifies for (issue 19, N20): the scenarios of
    this region's catalogue, then of each scheme an installed mapping table maps into
    (the grade read through the table's incentive-tier view, docs/adr/0205; the
    target's catalogue as fetched from its region, else as shipped).  A person who
    opted out, or has no published grade, qualifies for nothing and is told so."""
    mine = await self_query(ctx, key)
    grade = mine.result.grade if mine.result.eligible and not mine.opted_out else ""
    scheme, today = ctx.scheme, ctx.today()
    own = unlocks(catalogue_message(publisher.catalogue(scheme)), "own", grade or None)
    regions = [_region_incentives(own)]
    seen = {scheme.id}
    for table, _approval in ctx.mapper.served(today):
        target = table.target.scheme
        if target in seen or not grade:
            continue
        seen.add(target)
        try:
            mapped = recognised_for_threshold(ctx.mapper, scheme, grade, target, today)
        except NodeError:  # no usable (approved, in force) table into it today
            continue
        # off the event loop: it opens [storage] (on PostgreSQL a network connection)
        cat, origin = await asyncio.to_thread(target_catalogue, target, ctx.config.storage)
        regions.append(_region_incentives(unlocks(cat, origin, mapped.grade if mapped else None)))
    return node_pb2.MyIncentivesResponse(
        period=mine.period, grade=grade, opted_out=mine.opted_out, regions=regions
    )


def _region_incentives(found: Unlocks) -> node_pb2.RegionIncentives:
    cat = found.catalogue
    return node_pb2.RegionIncentives(
        region=cat.region,
        scheme=f"{cat.scheme_id}@{cat.scheme_version}",
        origin=found.origin,
        grade=found.grade or "",
        scenarios=list(found.scenarios),
    )

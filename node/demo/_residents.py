"""``huxin demo``: two residents ask the node — one without any record, one at grade B.

The first holds no credit record at all; the population authority filed them,
so they exist for the node and query their own score through the citizen
service like anyone (H12): the base score, grade A (H8), and the report says
why.  They are the resident of the consent story (node/demo/_story.py).

The second holds records that put them at B, below the tier of
``heihe/deposit-free-rental`` (A and above, H14).  They query their score and
its explanation, then try to grant the bank a consent for that scenario: the
node tells them they do not qualify (FAILED_PRECONDITION ``SCENARIO_NOT_MET``)
and issues nothing, so no consent exists, the bank has nothing to ask with
and learns nothing; their log shows no consent or attestation for the bank
(H14, N14).  A node
that does not check a scenario's tier at grant time is reported as such, and
the consent it granted is withdrawn at once.

Invariants: residents are chosen from the synthetic population's candidates
(node/demo/_population_files.py) by what the node itself answers, not by reading
its database; no full ID number is printed; every call has a deadline.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import grpc

from node.cli._scoring import render_report
from node.demo._intake import BANK, DEADLINE, HEIHE
from node.demo._population_files import DemoPopulation
from node.demo._story import SCENARIO, grant, needs, reason_of_sync
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from scoring import Contribution, ContributionStatus, Polarity, ScoreResult

if TYPE_CHECKING:
    from node.demo._main import DemoContext

__all__ = ["result_from_proto", "stage_below_base", "stage_no_records"]


def result_from_proto(msg: scoring_pb2.ScoreResult) -> ScoreResult:
    """The engine's result as the citizen service sent it (for the one report renderer)."""
    score = msg.score if msg.HasField("score") else None
    return ScoreResult(
        msg.scheme_id, msg.scheme_version, date.fromisoformat(msg.as_of), msg.eligible,
        score, msg.grade or None, ineligible_reason=msg.ineligible_reason or None,
        base_score=msg.base_score, added=msg.added, deducted=msg.deducted,
        unclamped=msg.base_score + msg.added - msg.deducted, clean_record=msg.clean_record,
        contributions=tuple(
            Contribution(
                c.record_id, c.category, c.category_name, c.source, c.act_id,
                Polarity(c.polarity), c.nominal_points, c.points, ContributionStatus(c.status),
                c.reason, date.fromisoformat(c.recognised_on), date.fromisoformat(c.valid_until),
            )
            for c in msg.contributions
        ),
    )  # fmt: skip


def _citizen(ctx: DemoContext) -> node_pb2_grpc.CitizenServiceStub:
    return node_pb2_grpc.CitizenServiceStub(ctx.procs.citizen_channel(HEIHE))


def my_score(ctx: DemoContext, who: str) -> node_pb2.MyScoreResponse:
    """``who``'s self-query (GetMyScore) at the Heihe node."""
    response: node_pb2.MyScoreResponse = _citizen(ctx).GetMyScore(
        node_pb2.MyScoreRequest(), metadata=ctx.procs.identity(HEIHE, who), timeout=DEADLINE
    )
    return response


def _first(
    ctx: DemoContext, candidates: Iterable[str], grade: str, *, records: bool
) -> tuple[str, node_pb2.MyScoreResponse] | None:
    """The first candidate the node scores at ``grade`` (with or without records)."""
    for who in candidates:
        resp = my_score(ctx, who)
        r = resp.result
        if r.eligible and r.grade == grade and bool(r.contributions) == records:
            return who, resp
    return None


def _files(ctx: DemoContext) -> DemoPopulation:
    pop = ctx.extra["files"]
    assert isinstance(pop, DemoPopulation)
    return pop


def stage_no_records(ctx: DemoContext) -> None:
    from node.demo._main import mask_id

    ctx.heading("A resident with no record at all queries their score (H8, H12)")
    found = _first(ctx, _files(ctx).no_records, ctx.heihe.base_grade, records=False)
    if found is None:
        ctx.say("No resident without records in this population; try more --people.")
        return
    ctx.resident, resp = found
    result = result_from_proto(resp.result)
    ctx.extra["no_records_result"] = result
    ctx.say(
        f"Citizen {mask_id(ctx.resident)} has never been the subject of a credit record: the"
        " population authority filed them, so the node serves them like anyone. They sign in"
        f" at the Heihe node and ask for their score (period {resp.period}):"
    )
    ctx.say()
    ctx.out.write(render_report(result, ctx.heihe))
    ctx.say()
    ctx.say(
        "H8: three years without a dishonesty record earn the base score, 600, grade A — so a"
        " resident nobody has filed anything about holds A and every incentive from A (H14)."
    )


_GIVEN = ("consent_granted", "attestation_issued")  # what would put the bank in the know


def _bank_entries(ctx: DemoContext, who: str) -> int:
    """Consents granted to, and attestations issued for, the bank in ``who``'s
    transparency log (first page)."""
    resp = _citizen(ctx).QueryLog(
        node_pb2.QueryLogRequest(), metadata=ctx.procs.identity(HEIHE, who), timeout=DEADLINE
    )
    entries = [node_pb2.LogEntry.FromString(e.entry) for e in resp.entries]
    return sum(1 for e in entries if e.requester == BANK and e.kind in _GIVEN)


def _consents(ctx: DemoContext, who: str) -> int:
    resp = _citizen(ctx).ListConsents(
        node_pb2.ListConsentsRequest(), metadata=ctx.procs.identity(HEIHE, who), timeout=DEADLINE
    )
    return len(resp.consents)


def stage_below_base(ctx: DemoContext) -> None:
    from node.demo._main import mask_id

    below = ctx.heihe.grades[ctx.heihe.grades.index(ctx.heihe.base_grade) + 1]
    ctx.heading(f"A grade-{below} resident asks for the same scenario (H14, N14)")
    found = _first(ctx, _files(ctx).below_base, below, records=True)
    if found is None:
        ctx.say(f"No grade-{below} resident in this population; try more --people.")
        return
    who, resp = found
    ctx.extra["below_base"] = who
    ctx.say(f"Citizen {mask_id(who)} asks for their score first, and sees why:")
    ctx.say()
    ctx.out.write(render_report(result_from_proto(resp.result), ctx.heihe))
    ctx.say()
    ctx.say(f"Then they try to grant the bank a consent for {SCENARIO}{needs(SCENARIO)}:")
    try:
        grant(ctx, who, SCENARIO)
    except grpc.RpcError as err:
        outcome: dict[str, object] = {"code": err.code().name, "reason": reason_of_sync(err)}
        ctx.say(f"  Refused: {err.code().name} {outcome['reason']} — {err.details()}")
        ctx.say()
        if outcome["reason"] == "SCENARIO_NOT_MET":
            ctx.say(
                f"The node tells the citizen, and only the citizen, that they do not qualify"
                f" for {SCENARIO}. Nothing was issued: no consent exists, so the bank has"
                " nothing to ask with, and it never learns that this person falls short."
            )
    else:
        # The node checks the scenario's tier at every grant (H14, N14): a grade-B
        # consent for an A scenario means the node is broken, so the demo stops.
        raise RuntimeError(
            f"the node granted a grade-{below} resident a consent for {SCENARIO}; "
            "it must refuse SCENARIO_NOT_MET (H14, N14)"
        )
    outcome["consents"] = _consents(ctx, who)
    outcome["bank_entries"] = _bank_entries(ctx, who)
    ctx.extra["below_base_outcome"] = outcome
    ctx.say(
        f"The citizen's consents: {outcome['consents']}; consents granted to or attestations"
        f" issued for {BANK} in their transparency log: {outcome['bank_entries']}."
    )

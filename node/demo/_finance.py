"""``huxin demo``: recognition in Hainan (C3, N20) and the bank's credit-card path (N18, N19).

Two stages after the bank's first offline check:

* :func:`stage_recognition` -- a Heihe resident at Heihe's incentive tier grants the
  Hainan bank a threshold consent for a scenario of HAINAN's catalogue
  (:data:`RECOGNISED`); Heihe issues it with the grade mapped through the
  Heihe → Hainan table (the incentive-tier view: below Heihe's incentive tier
  nothing is recognised); the bank verifies it offline and the demo prints the
  table, the hub's approval where ``huxin verify --json`` reports one (key
  ``approval``), and the Hainan incentives the recognised grade unlocks (from
  the hub-signed scenario catalogue of the bundle);
* :func:`stage_bank_card` -- a Hainan resident, filed by Hainan's population
  authority with one national honour, reads their credit-card derived score
  (``scoring.derive`` of their explained published report; every point
  explained), grants the bank a consent for :data:`CARD` (threshold), and the
  bank asks its own Hainan node and verifies the attestation offline: it learns
  "meets the credit-card scenario", neither grade nor score.

Invariants: no full ID number is printed or put on a command line (each check
reads the applicant's ID number from an owner-only file, ``--subject-id-file``,
as the bank's first check does); every network call has a deadline; every ``huxin verify`` line
printed is the command run (plus ``--json`` to read it).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from keys import subject_binding
from node.demo._intake import BANK, DEADLINE, HAINAN, HEIHE
from node.demo._population_files import AUTHORITY
from node.demo._testbed import make_id_number
from node.demo._verify import KeptInputs, command_line, verify_dir
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from scoring import derive, illustrative_suffix, load_derived

if TYPE_CHECKING:
    from node.demo._main import DemoContext

__all__ = ["CARD", "FINANCE_STAGES", "RECOGNISED", "stage_bank_card", "stage_recognition"]

RECOGNISED = "hainan/fast-lane"  # Hainan's catalogue: green channel, tier A (illustrative)
CARD = "hainan-credit-card/integrity-credit-card"  # the derived score's card, tier B
_HONOUR_OFFICE = "civilisation_office"  # the department that files honours


def _kept(ctx: DemoContext) -> KeptInputs:
    kept = ctx.extra.get("kept")
    assert isinstance(kept, KeptInputs), "runs after the bank's first check"
    return kept


def _status(ctx: DemoContext, region: str, name: str) -> Path:
    stub = node_pb2_grpc.PeerServiceStub(ctx.procs.channel(region, BANK))
    env = stub.GetStatusList(node_pb2.GetStatusListRequest(), timeout=DEADLINE)
    path = verify_dir(ctx.workdir) / name
    path.write_bytes(env.SerializeToString())
    return path


def _grant(ctx: DemoContext, region: str, who: str, purpose: str) -> node_pb2.ConsentToken:
    citizen = node_pb2_grpc.CitizenServiceStub(ctx.procs.citizen_channel(region))
    token: node_pb2.ConsentToken = citizen.GrantConsent(
        node_pb2.GrantConsentRequest(
            audience=BANK, purpose=purpose, scope=node_pb2.CONSENT_SCOPE_THRESHOLD,
            valid_days=30, max_uses=3,
        ),
        metadata=ctx.procs.identity(region, who),
        timeout=DEADLINE,
    )  # fmt: skip
    return token


def _request(
    ctx: DemoContext, token: node_pb2.ConsentToken, who: str, purpose: str, name: str
) -> tuple[Path, bytes]:
    """The bank asks its own Hainan node (which routes a Heihe consent through the hub)."""
    nonce = os.urandom(16)
    bank = node_pb2_grpc.PeerServiceStub(ctx.procs.channel(HAINAN, BANK))
    resp = bank.RequestAttestation(
        node_pb2.AttestationRequest(
            consent_token=token.token,
            subject_binding=subject_binding(token.binding_salt, who),
            nonce=nonce,
            purpose=purpose,
        ),
        timeout=DEADLINE,
    )
    path = verify_dir(ctx.workdir) / name
    path.write_bytes(resp.signed_attestation)
    return path, nonce


def _id_file(ctx: DemoContext, name: str, who: str) -> Path:
    """The applicant's ID number as the bank reads it from the card, readable by the owner."""
    path = verify_dir(ctx.workdir) / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(who + "\n")
    return path


def _verify(  # noqa: PLR0917 - one command's worth of inputs
    ctx: DemoContext,
    attestation: Path,
    nonce: bytes,
    status: Path,
    token: node_pb2.ConsentToken,
    id_file: Path,
) -> tuple[str, dict[str, Any] | None, str]:
    """(the printed command, ``huxin verify --json``'s document or None, its error)."""
    kept = _kept(ctx)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = [
        "verify", str(attestation), "--trust", str(kept.trust), "--hub-key", str(kept.hub_key),
        "--audience", BANK, "--nonce", "hex:" + nonce.hex(), "--salt", token.binding_salt.hex(),
        "--subject-id-file", str(id_file), "--status", str(status), "--now", now,
    ]  # fmt: skip
    out: subprocess.CompletedProcess[str] = ctx.procs.huxin(*args, "--json", check=False)
    if out.returncode != 0:
        return command_line(args), None, out.stderr.strip()[:200]
    return command_line(args), json.loads(out.stdout), ""


def _second_base_resident(ctx: DemoContext) -> str | None:
    """A Heihe resident without records (grade A, Heihe's incentive tier) other than the
    story's resident, whose log the later stages show."""
    pop = ctx.extra["files"]
    return next((p for p in pop.no_records if p != ctx.resident), None)


def stage_recognition(ctx: DemoContext) -> None:
    from node.demo._main import mask_id

    ctx.heading("A Heihe grade recognised in Hainan through the approved table (C3, N20)")
    who = _second_base_resident(ctx)
    if who is None:
        ctx.say("No second resident without records in this population; try more --people.")
        return
    ctx.say(
        f"Citizen {mask_id(who)} (Heihe A, no record) grants {BANK} a threshold consent for"
        f" {RECOGNISED}, a scenario of HAINAN's catalogue (tier A there). Heihe maps their"
        " grade into Hainan's scheme with the Heihe → Hainan table; below Heihe's incentive"
        " tier nothing would be recognised."
    )
    try:
        token = _grant(ctx, HEIHE, who, RECOGNISED)
        path, nonce = _request(ctx, token, who, RECOGNISED, "recognised.bin")
    except grpc.RpcError as err:
        from node.demo._story import reason_of_sync

        ctx.extra["recognition"] = {"refused": reason_of_sync(err)}
        ctx.say(f"Refused: {err.code().name} {reason_of_sync(err)} — {err.details()}")
        return
    status = _status(ctx, HEIHE, "heihe-status-2.bin")
    ids = _id_file(ctx, "subject-id-recognised", who)
    command, doc, error = _verify(ctx, path, nonce, status, token, ids)
    ctx.say(f"$ {command}")
    if doc is None:
        ctx.extra["recognition"] = {"error": error}
        ctx.say(f"NOT VALID: {error}")
        return
    a = doc["attestation"]
    m = a.get("mapped") or {}
    th = a.get("threshold") or {}
    ctx.say()
    ctx.table(
        ("table", "method", "sha256", "from", "into"),
        [(m.get("mapping"), m.get("method"), (m.get("mapping_sha256") or "")[:16] + "…",
          a["scheme"], m.get("scheme"))],
    )  # fmt: skip
    approval = doc.get("approval")
    if approval:
        ctx.say(f"Approved: {_approval_text(approval)}")
    unlocked = doc.get("unlocks") or []  # exactly what `huxin verify` printed
    ctx.say()
    ctx.say(
        f"What the bank learns: {doc['meets']}; no grade, no score"
        f"{illustrative_suffix(th.get('scheme'))}."
    )
    ctx.say(
        f"The recognised grade (≥ {th.get('min_tier')} in {th.get('scheme')}) unlocks in"
        f" Hainan: {', '.join(unlocked) or 'none'}."
    )
    ctx.extra["recognition"] = {
        "meets": doc["meets"],
        "mapping": m.get("mapping"),
        "approval": approval,
        "unlocks": unlocked,
    }


def _approval_text(approval: object) -> str:
    """``heihe-hainan-anchored@1: approved (批准) by national, in force from …, incentive
    reach …`` from ``huxin verify --json``'s ``approval`` (its keys, where present)."""
    if not isinstance(approval, dict):
        return str(approval)
    said = [str(approval.get("table", "the table"))]
    if "decision" in approval:
        zh = approval.get("decision_zh")
        said.append(f": {approval['decision']}{f' ({zh})' if zh else ''}")
    if "authority" in approval:
        said.append(f" by {approval['authority']}")
    if approval.get("effective_from"):
        said.append(f", in force from {approval['effective_from']}")
    if approval.get("expires"):
        said.append(f" until {approval['expires']}")
    if approval.get("reach"):
        said.append(f", incentive reach {approval['reach']}")
    return "".join(said)


def _file_hainan_resident(ctx: DemoContext, who: str) -> None:
    """Hainan's population authority files them; the honours office files a national
    honour (Hainan: 20 × 3 = 60 points)."""
    authority = node_pb2_grpc.SourceServiceStub(ctx.procs.channel(HAINAN, f"{HAINAN}.{AUTHORITY}"))
    authority.SubmitResidenceFacts(
        node_pb2.SubmitResidenceFactsRequest(
            batch_id="demo-card-applicant",
            facts=[node_pb2.ResidenceFact(subject_id=who, kind="move_in", on="2000-01-01")],
        ),
        timeout=DEADLINE,
    )
    office = node_pb2_grpc.SourceServiceStub(
        ctx.procs.channel(HAINAN, f"{HAINAN}.{_HONOUR_OFFICE}")
    )
    office.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="demo-card-honour",
            records=[
                scoring_pb2.CreditRecord(
                    record_id="demo-honour-1", subject_id=who, source=_HONOUR_OFFICE,
                    category="honour", act_id="demo-act-1", recognised_on="2025-06-01",
                    level="national",
                )
            ],
        ),
        timeout=DEADLINE,
    )  # fmt: skip


def _derived_lines(ctx: DemoContext, who: str) -> list[str]:
    """The applicant's own credit-card derived score, every point explained (N18)."""
    from node.demo._residents import result_from_proto

    citizen = node_pb2_grpc.CitizenServiceStub(ctx.procs.citizen_channel(HAINAN))
    resp = citizen.GetMyScore(
        node_pb2.MyScoreRequest(), metadata=ctx.procs.identity(HAINAN, who), timeout=DEADLINE
    )
    derived = load_derived(CARD.partition("/")[0])
    d = derive(derived, result_from_proto(resp.result))
    lines = [
        f"{derived.name} {derived.key} (on {derived.base_key}, period {resp.period}):"
        f" {d.score} = base {d.base_score}"
        + "".join(f" {c.points:+d}" for c in d.contributions)
        + f", tier {d.grade}{illustrative_suffix(derived.key)}",
    ]
    lines += [f"  {c.reason}" for c in d.contributions]
    ctx.extra["card_derived"] = {"score": d.score, "grade": d.grade}
    return lines


def stage_bank_card(ctx: DemoContext) -> None:
    from node.demo._main import mask_id

    ctx.heading("A Hainan resident applies for the integrity credit card (N18, N19)")
    who = make_id_number(601, area="460100")  # synthetic; never printed in full
    _file_hainan_resident(ctx, who)
    ctx.say(
        f"Hainan's population authority files citizen {mask_id(who)}; the honours office files"
        " one national honour. The citizen reads their credit-card derived score, computed"
        " from their published, explained Hainan report:"
    )
    ctx.say()
    for line in _derived_lines(ctx, who):
        ctx.say("  " + line)
    ctx.say()
    ctx.say(f"They grant {BANK} a threshold consent for {CARD} (tier B and above):")
    token = _grant(ctx, HAINAN, who, CARD)
    path, nonce = _request(ctx, token, who, CARD, "credit-card.bin")
    ctx.say(
        "The node computes the derived tier from the same published month; B meets the"
        " scenario, so the consent is granted. The bank asks its own Hainan node:"
    )
    status = _status(ctx, HAINAN, "hainan-status.bin")
    ids = _id_file(ctx, "subject-id-card", who)
    command, doc, error = _verify(ctx, path, nonce, status, token, ids)
    ctx.say(f"$ {command}")
    if doc is None:
        ctx.extra["card"] = {"error": error}
        ctx.say(f"NOT VALID: {error}")
        return
    a = doc["attestation"]
    th = a.get("threshold") or {}
    learned = (
        f"{doc['meets']}; no grade, no score{illustrative_suffix(th.get('scheme'))}"
        if not a.get("grade")
        else f"grade {a['grade']} in {a['scheme']}"
    )
    ctx.extra["card"] = {"scheme": a["scheme"], "model": a["model_version"], "learned": learned}
    ctx.say()
    ctx.table(
        ("valid", "issuer", "scheme (derived)", "base (model_version)", "disclosure"),
        [("yes", a["issuer_region"], a["scheme"], a["model_version"], a["disclosure"])],
    )  # fmt: skip
    ctx.say()
    ctx.say(f"What the bank learns: {learned}.")
    ctx.say(
        "The hub's scenario catalogue lists the derived score's scenarios at their version"
        " with their base; an attestation of another version verifies nowhere until the hub"
        " lists it (docs/adr/0006)."
    )


FINANCE_STAGES = (stage_recognition, stage_bank_card)

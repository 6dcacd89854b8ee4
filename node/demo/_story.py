"""``huxin demo``: one consent for one incentive scenario, from grant to withdrawal.

The story: a Heihe resident without any record (grade A, the base, H8) rents
without a deposit, an incentive of Heihe's published catalogue
(``heihe/deposit-free-rental``: A and above, H14).  They grant the Hainan
bank a consent for that scenario alone, with the default scope — a threshold
attestation, "meets the scenario", with neither grade nor score (H12); the
bank asks its own Hainan node, which routes through the Heilongjiang hub to
Heihe (the consent names Heihe as its issuer); Heihe checks the consent and
signs; the bank verifies the result offline with the hub's trust bundle
(``huxin verify``) and prints what it learned.  The resident sees the query in
their log with an inclusion proof, withdraws the consent, and the next
request is refused.

Threshold attestations (scenario and disclosure kind in the attestation) are
read where the wire carries them (:func:`threshold_scope`,
:func:`attestation_text`); a node without them grants a grade-only consent for
the scenario and maps the grade to Hainan's scheme.

Invariants: no full ID number is printed or put on a command line; every
network call has a deadline; the ``huxin verify`` command printed runs as
pasted (node/demo/_verify.py), and the demo runs exactly that command (plus
``--json`` to read the result).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf.message import Message

from keys import CHECKPOINT_TYPE, load_trust, subject_binding, verify_envelope, verify_inclusion
from keys.pb.v1 import attestation_pb2
from node.demo._intake import BANK, DEADLINE, HAINAN, HEIHE, HUB
from node.demo._verify import command_line, keep_inputs, verify_args, verify_dir
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of
from node.store import connect
from node.store._peers import synced_peers
from scoring import grade_label, list_schemes, load_scheme, parse_scenario_ref, shipped_scheme

if TYPE_CHECKING:
    from node.demo._main import DemoContext

__all__ = [
    "FEDERATION_STAGES",
    "SCENARIO",
    "attestation_text",
    "grant",
    "needs",
    "reason_of_sync",
    "threshold_scope",
]

SCENARIO = "heihe/deposit-free-rental"  # Heihe's catalogue: deposit-free rentals, A and above


def threshold_scope() -> node_pb2.ConsentScope.ValueType | None:
    """The threshold consent scope where the wire has one (else None: grade only)."""
    value = getattr(node_pb2, "CONSENT_SCOPE_THRESHOLD", None)
    return cast("node_pb2.ConsentScope.ValueType", value) if isinstance(value, int) else None


def field_text(msg: Message, name: str) -> str:
    """A field of ``msg`` as text (an enum by its name), '' where the wire has no such field."""
    fd = msg.DESCRIPTOR.fields_by_name.get(name)
    if fd is None:
        return ""
    value = getattr(msg, name)
    if fd.enum_type is not None:
        known = fd.enum_type.values_by_number.get(value)
        return known.name if known is not None and value else ""
    return str(value)


def scope_text(scope: node_pb2.ConsentScope.ValueType) -> str:
    return node_pb2.ConsentScope.Name(scope).removeprefix("CONSENT_SCOPE_").lower()


def grant(
    ctx: DemoContext, who: str, purpose: str, scope: node_pb2.ConsentScope.ValueType | None = None
) -> node_pb2.ConsentToken:
    """``who`` grants the bank a consent for ``purpose`` (synchronous; raises grpc.RpcError)."""
    procs = ctx.procs
    citizen = node_pb2_grpc.CitizenServiceStub(procs.citizen_channel(HEIHE))
    if scope is None:
        scope = threshold_scope() or node_pb2.CONSENT_SCOPE_GRADE
    token: node_pb2.ConsentToken = citizen.GrantConsent(
        node_pb2.GrantConsentRequest(
            audience=BANK, purpose=purpose, scope=scope, valid_days=30, max_uses=3
        ),
        metadata=procs.identity(HEIHE, who),
        timeout=DEADLINE,
    )
    return token


def _wait_for_sync(ctx: DemoContext, timeout: float = 20.0) -> None:
    """Until Hainan has synced the hub and Heihe at least once (trust material)."""
    db = ctx.database(HAINAN)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = connect(db, readonly=True)
        try:
            done = synced_peers(conn)
        finally:
            conn.close()
        if {HUB, HEIHE} <= done:
            return
        time.sleep(0.2)


def stage_consent(ctx: DemoContext) -> None:
    assert ctx.resident is not None
    from node.demo._main import mask_id

    kind = "a threshold consent" if threshold_scope() is not None else "a consent"
    ctx.heading(f"The resident grants a Hainan bank {kind} for one scenario (H12, H14)")
    token = grant(ctx, ctx.resident, SCENARIO)
    consent = node_pb2.ConsentGrant.FromString(token.token.payload)
    ctx.extra["token"] = token
    ctx.say(
        f"Citizen {mask_id(ctx.resident)} signs in at the Heihe node (identity provider"
        f" assertion) and grants, for {SCENARIO} of Heihe's published incentive catalogue"
        " (deposit-free rentals, grade A and above):"
    )
    ctx.say()
    until = datetime.fromtimestamp(consent.not_after, UTC).date().isoformat()
    ctx.table(
        ("consent", "issuer", "audience", "scenario", "scope", "valid until", "max uses"),
        [(consent.consent_id[:12] + "…", consent.issuer_region, consent.audience,
          consent.purpose, scope_text(consent.scope), until, consent.max_uses)],
    )  # fmt: skip
    ctx.say()
    ctx.say(
        "The citizen hands the bank the token and the binding salt; the bank, which sees the"
        " applicant's ID card, computes the subject binding HMAC(salt, ID) itself."
    )


def _request(ctx: DemoContext, nonce: bytes) -> node_pb2.AttestationResponse:
    assert ctx.resident is not None
    token: node_pb2.ConsentToken = ctx.extra["token"]
    bank = node_pb2_grpc.PeerServiceStub(ctx.procs.channel(HAINAN, BANK))
    req = node_pb2.AttestationRequest(
        consent_token=token.token,
        subject_binding=subject_binding(token.binding_salt, ctx.resident),
        nonce=nonce,
        # a threshold says "meets the scenario" in Heihe's own scheme: nothing to map
        target_scheme="" if threshold_scope() is not None else HAINAN,
        purpose=SCENARIO,
    )
    response: node_pb2.AttestationResponse = bank.RequestAttestation(req, timeout=DEADLINE)
    return response


def stage_request(ctx: DemoContext) -> None:
    _wait_for_sync(ctx)
    ctx.heading("The bank asks its Hainan node; the request travels through the hub")
    nonce = os.urandom(16)
    started = time.perf_counter()
    resp = _request(ctx, nonce)
    ms = (time.perf_counter() - started) * 1000
    ctx.extra["nonce"] = nonce
    path = verify_dir(ctx.workdir) / "attestation.bin"
    path.write_bytes(resp.signed_attestation)
    ctx.extra["attestation"] = path
    ctx.say(
        f"hainan.bank → hainan (its node) → heilongjiang (hub) → heihe (the consent's issuer)"
        f" and back in {ms:.0f} ms.  Each hop authenticates the previous one by its"
        " certificate; the bank's identity travels as 'on behalf of' and only a hub or the"
        " bank's own region may vouch for it.  Heihe checked the consent and signed."
    )
    ctx.say()
    ctx.table(("node", "logged (structured log, no personal data)"), _route_lines(ctx))


def _route_lines(ctx: DemoContext) -> list[tuple[str, str]]:
    """What each node logged about the request (its own log file)."""
    rows = []
    for node in (HAINAN, HUB, HEIHE):
        log = ctx.layout.nodes[node].directory / "node.log"
        for _ in range(50):  # the home region writes its line right after replying
            lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x]
            hits = [x for x in lines if x.get("msg") == "request routed"] or [
                x for x in lines if x.get("method") == "RequestAttestation" and x.get("via")
            ]
            if hits:
                h = hits[-1]
                text = (
                    f"routed for {h['requester']} to {h['hop']} (hop {h['hops']})"
                    if h.get("msg") == "request routed"
                    else f"served {h['peer']} via {h['via']}: {h['code']} ({h['ms']} ms)"
                )
                rows.append((node, text))
                break
            time.sleep(0.02)
    return rows


def _fetch_status(ctx: DemoContext, name: str) -> Path:
    """The bank fetches Heihe's signed status list from the endpoint the trust list names
    (allowed: 'hainan.bank' belongs to a listed region) and keeps it as ``name``."""
    stub = node_pb2_grpc.PeerServiceStub(ctx.procs.channel(HEIHE, BANK))
    env = stub.GetStatusList(node_pb2.GetStatusListRequest(), timeout=DEADLINE)
    path = verify_dir(ctx.workdir) / name
    path.write_bytes(env.SerializeToString())
    return path


def _verify_args(ctx: DemoContext, statuses: list[Path], now: int) -> list[str]:
    assert ctx.resident is not None
    token: node_pb2.ConsentToken = ctx.extra["token"]
    kept = ctx.extra.get("kept")
    if kept is None:
        layout = ctx.layout
        kept = ctx.extra["kept"] = keep_inputs(
            verify_dir(ctx.workdir), layout.bundle(HUB), layout.hub_key_file(HUB), ctx.resident
        )
    return verify_args(
        ctx.extra["attestation"], kept, BANK, ctx.extra["nonce"], token.binding_salt, statuses, now
    )


def _run_verify(ctx: DemoContext, args: list[str]) -> subprocess.CompletedProcess[str]:
    """The printed command, run as printed (plus ``--json`` to read its result)."""
    return ctx.procs.huxin(*args, "--json", check=False)


def _label(grade: str | None, key: str | None) -> str:
    """A grade as printed everywhere (marked where the scheme's grades are illustrative)."""
    if not grade or not key:
        return "-"
    scheme_id, _, version = key.partition("@")
    scheme = shipped_scheme(scheme_id, version)
    return grade_label(grade, scheme) if scheme is not None else f"{grade} ({key})"


def attestation_text(doc: dict[str, Any], signed: bytes) -> tuple[str, str, str]:
    """(scenario, disclosure kind, what the bank learns) of a verified attestation:
    from ``huxin verify --json`` where it says, else from the attestation's own fields
    (read only after the check passed)."""
    a = doc["attestation"]
    env = attestation_pb2.SignedAttestation.FromString(signed).envelope
    att = attestation_pb2.Attestation.FromString(env.payload)
    scenario = str(a.get("scenario") or field_text(att, "scenario") or a.get("purpose") or "")
    kind = str(a.get("disclosure") or field_text(att, "disclosure") or "")
    kind = kind.lower().removeprefix("disclosure_").removeprefix("kind_")
    kind = kind or ("grade" if a.get("grade") else "")
    if not a.get("grade"):
        return (
            scenario,
            kind or "threshold",
            f"meets {scenario}{needs(scenario)}; no grade, no score",
        )
    m = a.get("mapped") or {}
    learned = _label(a["grade"], a["scheme"])
    if m:
        learned += f", mapped to {_label(m.get('grade'), m.get('scheme'))} ({m.get('method')})"
    score = a.get("score")
    learned += "; score not disclosed" if score is None else f"; score {score}"
    return scenario, kind, learned


def needs(scenario: str) -> str:
    """`` (A or above in heihe@2025.1)``: the scenario's tier in the shipped catalogue
    ('' for a scenario it does not hold)."""
    ref = parse_scenario_ref(scenario)
    if ref is None or ref[0] not in list_schemes():
        return ""
    scheme = load_scheme(ref[0])
    tier = next((i.min_grade for i in scheme.incentives if i.id == ref[1]), "")
    return f" ({tier} or above in {scheme.key})" if tier else ""


def stage_verify(ctx: DemoContext) -> None:
    ctx.heading("The bank verifies offline (as `huxin verify` does)")
    status = _fetch_status(ctx, "heihe-status-at-check.bin")
    args = _verify_args(ctx, [status], int(time.time()))
    command = command_line(args)
    ctx.extra["verify_command"] = command
    ctx.say(f"$ {command}")
    out = _run_verify(ctx, args)
    if out.returncode != 0:
        ctx.extra["verified"] = None
        ctx.say(f"NOT VALID: {out.stderr.strip()[:200]}")
        return
    doc = json.loads(out.stdout)
    scenario, kind, learned = attestation_text(doc, ctx.extra["attestation"].read_bytes())
    ctx.extra["verified"] = {"scenario": scenario, "disclosure": kind, "learned": learned}
    ctx.say()
    ctx.table(
        ("valid", "issuer", "scenario", "disclosure", "status", "trust list"),
        [("yes", doc["attestation"]["issuer_region"], scenario, kind, doc["status"],
          f"v{doc['trust_version']}")],
    )  # fmt: skip
    ctx.say()
    ctx.say(f"What the bank learns: {learned}.")
    ctx.say()
    ctx.say(
        "Signature, signing key (certified by Heihe's root key in the hub-signed trust list),"
        " expiry, audience, nonce, subject binding and status all check out without calling"
        " anyone.  The command above reads only files in"
        f" {verify_dir(ctx.workdir)} (the applicant's synthetic ID number is in"
        " subject-id, readable by you alone); paste it to check again as of --now."
    )


def stage_log(ctx: DemoContext) -> None:
    assert ctx.resident is not None
    layout, procs = ctx.layout, ctx.procs
    ctx.heading("The resident sees who queried them, with inclusion proofs (H16)")
    citizen = node_pb2_grpc.CitizenServiceStub(procs.citizen_channel(HEIHE))
    hub_key = bytes.fromhex(layout.hub_key_file(HUB).read_text(encoding="ascii").strip())
    trust = load_trust(layout.bundle(HUB).read_bytes(), hub_key, datetime.now(UTC))
    rows = []
    start, more = 0, True
    while more:  # QueryLog pages; each page's proofs are against its own checkpoint
        resp = citizen.QueryLog(
            node_pb2.QueryLogRequest(start_index=start),
            metadata=procs.identity(HEIHE, ctx.resident),
            timeout=DEADLINE,
        )
        cp = attestation_pb2.Checkpoint.FromString(
            verify_envelope(resp.checkpoint, trust.region_keys(HEIHE), CHECKPOINT_TYPE)
        )
        for e in resp.entries:
            entry = node_pb2.LogEntry.FromString(e.entry)
            ok = verify_inclusion(
                e.entry, e.proof.leaf_index, e.proof.tree_size, list(e.proof.hashes), cp.root_hash
            )
            when = datetime.fromtimestamp(entry.timestamp, UTC).strftime("%H:%M:%S")
            reason = entry.reason + (f" x{entry.count}" if entry.count > 1 else "")
            rows.append((e.proof.leaf_index, when, entry.kind, entry.requester or "-",
                         entry.purpose or "-", reason or "-", "yes" if ok else "NO"))  # fmt: skip
        start, more = resp.next_start_index, resp.more
    ctx.table(("leaf", "time", "event", "requester", "purpose", "reason", "proof ok"), rows)
    ctx.say()
    ctx.say(f"Proofs checked against Heihe's signed log checkpoint (size {cp.tree_size}).")


def stage_withdraw(ctx: DemoContext) -> None:
    assert ctx.resident is not None
    procs = ctx.procs
    token: node_pb2.ConsentToken = ctx.extra["token"]
    ctx.heading("The resident withdraws consent; the next request is refused")
    citizen = node_pb2_grpc.CitizenServiceStub(procs.citizen_channel(HEIHE))
    citizen.WithdrawConsent(
        node_pb2.WithdrawConsentRequest(consent_id=token.consent_id),
        metadata=procs.identity(HEIHE, ctx.resident),
        timeout=DEADLINE,
    )
    try:
        _request(ctx, os.urandom(16))
    except grpc.RpcError as err:
        ctx.extra["refused"] = reason_of_sync(err)
        ctx.say(f"Refused: {err.code().name} ({ctx.extra['refused']}) — {err.details()}.")
    else:
        ctx.extra["refused"] = ""
        ctx.say("NOT refused — this is a bug.")
    ctx.say()
    at_check = verify_dir(ctx.workdir) / "heihe-status-at-check.bin"
    fresh = _fetch_status(ctx, "heihe-status-after-withdrawal.bin")
    args = _verify_args(ctx, [at_check, fresh], int(time.time()))
    ctx.say(f"$ {command_line(args)}")
    out = _run_verify(ctx, args)
    ctx.extra["revoked"] = out.returncode != 0 and "STATUS_REVOKED" in out.stdout + out.stderr
    ctx.say(
        "The attestation the bank already holds now fails `huxin verify`: of the two lists"
        " it holds, Heihe's newer one decides:"
        f" {'STATUS_REVOKED' if ctx.extra['revoked'] else out.stdout.strip()[:80]}."
    )
    ctx.say()
    ctx.say("`huxin status --config hainan/node.toml`:")
    out = procs.huxin("status", "--config", str(ctx.layout.nodes[HAINAN].config), check=False)
    for line in out.stdout.splitlines():
        ctx.say("  " + line)


def reason_of_sync(err: grpc.RpcError) -> str:
    """The huxin-reason of a synchronous RPC error ('' if none)."""
    trailing: Any = err.trailing_metadata() or ()
    for key, value in trailing:
        if key == "huxin-reason":
            return value if isinstance(value, str) else bytes(value).decode()
    return reason_of(err)


FEDERATION_STAGES: list[Callable[[DemoContext], None]] = [
    stage_consent,
    stage_request,
    stage_verify,
    stage_log,
    stage_withdraw,
]

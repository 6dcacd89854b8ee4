"""Witnessing regions' transparency logs: consistency checks and co-signatures.

The region pushes its current log checkpoint in its Push stream (docs/adr/0402:
push, not pull — the hub never needs to reach into a region, and a region that
stops pushing is visible by its stale ``last_push_at``) together with the RFC
9162 consistency proof from the size the hub last witnessed (``GetCursor``).

Invariants:

* the checkpoint must be signed by a key certified for the pushing region, with
  origin ``<region>/log`` and kind ``log``; otherwise it is refused (nothing
  stored);
* the signing key must be usable at the checkpoint's timestamp (not revoked
  then, inside its validity) and the timestamp may not lie more than
  ``SKEW_SECONDS`` after ``now`` — the same checks as batch authentication
  (node/hub/_ingest.py); a checkpoint failing them is refused, never co-signed;
* a checkpoint is accepted only if it extends the last witnessed one: same
  size and same root, or a larger size with a verifying consistency proof; it
  is then co-signed (the hub's signature appended to the same envelope) and
  becomes the witnessed state;
* anything else — a smaller size (``LOG_ROLLBACK``), the same size with another
  root or a failing proof (``SPLIT_VIEW``) — is a split view: both checkpoints
  and the proof are stored as evidence in the same transaction, the witnessed
  state is NOT changed, and the caller raises it (log event, metric, error).
"""

from __future__ import annotations

from dataclasses import dataclass

from keys import (
    CHECKPOINT_TYPE,
    Checkpoint,
    Envelope,
    EnvelopeSignature,
    KeyPair,
    Trust,
    VerificationError,
    pae,
    verified_signer,
    verify_consistency,
)
from node.core._errors import InvalidArgumentError
from node.pb.v1 import hub_pb2
from node.store import Connection
from node.store import _hub as hub_store

__all__ = ["SKEW_SECONDS", "WitnessOutcome", "check_signing_time", "witness_sync"]

SKEW_SECONDS = 300  # clock skew tolerated for a region's timestamps (batches, logs, lists)


def check_signing_time(trust: Trust, kid: str, signed_at: int, now: int, field: str) -> None:
    """Refuse a signature whose key is unusable at ``signed_at`` or dated in the future."""
    owner = trust.signing_key(kid)
    problem = "UNKNOWN_KEY" if owner is None else owner[1].problem_at(signed_at)
    if problem:
        raise VerificationError(problem, "signing key not usable at signing time", field="key_id")
    if signed_at > now + SKEW_SECONDS:
        raise VerificationError("NOT_YET_VALID", "signed in the future", field=field)


@dataclass(frozen=True, slots=True)
class WitnessOutcome:
    cosigned: bytes | None  # serialised co-signed Envelope
    evidence_reason: str = ""
    evidence_id: int = 0


def witness_sync(  # noqa: PLR0917
    conn: Connection,
    region: str,
    trust: Trust,
    lc: hub_pb2.LogCheckpoint,
    hub_key: KeyPair,
    now: int,
) -> WitnessOutcome:
    """Inside a write unit: check ``lc`` against the witnessed state (module docstring)."""
    env = lc.checkpoint
    payload, kid = verified_signer(env, trust.region_keys(region), CHECKPOINT_TYPE)
    cp = Checkpoint.from_bytes(payload)
    check_signing_time(trust, kid, cp.timestamp, now, "log_checkpoint")
    if cp.origin != f"{region}/log" or cp.kind != "log" or len(cp.root_hash) != 32:
        raise InvalidArgumentError(
            "LOG_CHECKPOINT_INVALID", "not this region's log checkpoint", field="log_checkpoint"
        )
    row = hub_store.witnessed_row(conn, region)
    old_size, old_root, old_env = (0, b"", None) if row is None else row
    old_size = int(old_size)
    proof = list(lc.proof.hashes)
    reason = ""
    if old_size > 0:
        if cp.tree_size < old_size:
            reason = "LOG_ROLLBACK"
        elif lc.proof.first_size not in (0, old_size) or not verify_consistency(
            old_size, cp.tree_size, bytes(old_root), cp.root_hash, proof
        ):
            reason = "SPLIT_VIEW"
    if reason:
        evidence = hub_store.record_evidence(
            conn, region, reason, old_env, env.SerializeToString(), lc.proof.SerializeToString(),
            now,
        )  # fmt: skip
        return WitnessOutcome(None, reason, evidence)
    own = hub_key.sign(pae(CHECKPOINT_TYPE, payload))
    signatures = tuple(EnvelopeSignature(s.key_id, bytes(s.sig)) for s in env.signatures)
    cosigned = Envelope(
        CHECKPOINT_TYPE, payload, (*signatures, EnvelopeSignature(hub_key.key_id, own))
    ).to_bytes()
    hub_store.record_witnessed(conn, region, cp.tree_size, cp.root_hash, cosigned)
    return WitnessOutcome(cosigned)

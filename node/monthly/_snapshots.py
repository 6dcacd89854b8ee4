"""Sign a finished monthly run as Merkle batches (H3) and queue them for the hub (H13).

Each eligible person of a run becomes one leaf: an ``Attestation`` payload
(type ``attestation.v2``) whose ``subject_binding`` is the PROVINCE pseudonym
``HMAC-SHA256(province key, normalised ID)``, whose audience is the hub id,
whose ``consent_id`` and ``scenario`` are empty and whose disclosure kind is
``statutory`` (a push to the provincial platform, H13, not a consented query:
docs/SPEC.md section 3).  The
ID is unsealed with the node's seal key in memory only to compute that
pseudonym (docs/adr/0400); it is never stored, logged or sent.

Invariants:

* ``batch_leaves`` people per batch in ``subject_key`` order; ONE Ed25519
  signature per batch (a ``Checkpoint`` of kind ``batch`` over the RFC 9162
  root of ``PAE(type, payload)`` leaves, :func:`keys.issue_batch`);
* a batch row, its leaves and its ``snapshot_batch`` outbox event (none for
  a standalone region, whose batches are addressed to itself) commit in
  ONE transaction (:func:`node.store._snapshot_batches.store_batch`), so an interrupted signing holds complete batches only and
  running it again resumes with the next batch number (idempotent);
* only a finished run is signed; ineligible people have no grade and are not
  pushed;
* :func:`attestation_for` rebuilds any person's leaf with its inclusion proof
  and the signed checkpoint: a ``SignedAttestation`` verifiable on its own
  (``keys.verify_attestation(blob, trust, now, audience=<hub id>)``).
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keys import (
    ATTESTATION_TYPE,
    KeyPair,
    Sealer,
    SealError,
    carry_levels,
    issue_batch,
    leaf_hash,
    pae,
    path_from_levels,
    province_pseudonym,
)
from keys import STATUTORY as STATUTORY_PUSH
from keys.pb.v1 import attestation_pb2
from node.core._config import NodeConfig
from node.core._errors import CodedNodeError
from node.core._secrets import NodeSecrets
from node.store import Connection, WriterTurn
from node.store import _snapshot_batches as batches

__all__ = [
    "SignSummary",
    "SnapshotError",
    "SnapshotSigner",
    "attestation_for",
    "batch_id_of",
    "sign_run",
    "signer_from_config",
    "standalone_pseudonym_key",
]

DAY = 86_400
PURPOSE = "provincial-push"


class SnapshotError(CodedNodeError):
    """A run that cannot be signed; ``code`` is stable."""


@dataclass(frozen=True, slots=True)
class SnapshotSigner:
    """What signing needs: the node's signing key, region, hub and province key."""

    region: str
    hub_id: str
    signing: KeyPair
    sealer: Sealer
    province_key: bytes
    batch_leaves: int = 10_000
    ttl_days: int = 62

    def __post_init__(self) -> None:
        if len(self.province_key) < 16:
            raise SnapshotError("PROVINCE_KEY_MISSING", "a province key of 32 bytes is required")
        if not self.hub_id:
            raise SnapshotError("HUB_NOT_CONFIGURED", "the hub id (snapshot audience) is missing")
        if self.batch_leaves < 1:
            raise SnapshotError("INVALID_BATCH_SIZE", "batch_leaves must be at least 1")


@dataclass(frozen=True, slots=True)
class SignSummary:
    run_id: int
    period: str
    batches: int  # batches of the run (total)
    batches_signed: int  # in this invocation
    leaves: int  # leaves of the run (total)
    seconds: float


def batch_id_of(region: str, period: str, scheme: str, run_id: int, number: int) -> str:
    return f"{region}/{period}/{scheme}/r{run_id}/b{number:05d}"


def _run(conn: Connection, run_id: int) -> tuple[str, str, str]:
    row = batches.run_of(conn, run_id)
    if row is None:
        raise SnapshotError("RUN_NOT_FOUND", f"no monthly run {run_id}")
    if row[3] is None:
        raise SnapshotError("RUN_NOT_FINISHED", f"monthly run {run_id} is not finished")
    return row[0], row[1], row[2]


def find_run(conn: Connection, period: str, scheme_id: str) -> int:
    run_id = batches.latest_run(conn, period, scheme_id)
    if run_id is None:
        raise SnapshotError("RUN_NOT_FOUND", f"no monthly run for {scheme_id} {period}")
    return run_id


def sign_run(
    conn: Connection,
    run_id: int,
    signer: SnapshotSigner,
    now: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    lock: WriterTurn | None = None,
) -> SignSummary:
    """Sign the (remaining) batches of finished run ``run_id``; see the module docstring.

    ``conn`` is an autocommit ``sqlite3`` connection (``node.store.connect``).
    ``lock``: the node's writer lock, held for each batch's transaction when the node
    serves meanwhile (its writers then wait in flock, not in SQLite, ADR 0312).
    """
    started = time.perf_counter()
    period, scheme_id, scheme_version = _run(conn, run_id)
    scheme = f"{scheme_id}@{scheme_version}"
    eligible = batches.count_eligible(conn, run_id)
    size = signer.batch_leaves
    total = -(-eligible // size)
    number, offset = batches.signed_so_far(conn, run_id)
    template = attestation_pb2.Attestation(
        issuer_region=signer.region,
        scheme_id=scheme_id,
        scheme_version=scheme_version,
        period=period,
        model_version=scheme,
        issued_at=now,
        expires_at=now + signer.ttl_days * DAY,
        audience=signer.hub_id,
        purpose=PURPOSE,
        disclosure=STATUTORY_PUSH,
    )
    signed = 0
    while True:
        rows = batches.eligible_page(conn, run_id, size, offset)
        if not rows:
            break
        batch_id = batch_id_of(signer.region, period, scheme, run_id, number)
        payloads = _payloads(rows, template, signer, batch_id)
        batch = issue_batch(payloads, signer.signing, signer.region, now)
        checkpoint = batch.checkpoint.to_bytes()
        held = lock if lock is not None else contextlib.nullcontext()
        with held:
            _store_batch(conn, signer, (batch_id, run_id, period, scheme_id, scheme_version,
                         number, batch.root, checkpoint, now), rows, payloads)  # fmt: skip
        signed += 1
        number += 1
        offset += len(rows)
        if progress is not None:
            progress(number, total)
    return SignSummary(run_id, period, number, signed, offset, time.perf_counter() - started)


def _store_batch(
    conn: Connection,
    signer: SnapshotSigner,
    batch_row: tuple[str, int, str, str, str, int, bytes, bytes, int],
    rows: list[tuple[bytes, int, str, bytes]],
    payloads: list[bytes],
) -> None:
    """One batch row, its leaves and its outbox event in ONE transaction."""
    batch_id, run_id, period, scheme_id, scheme_version, number, root, checkpoint, now = batch_row
    leaf_hashes = [leaf_hash(pae(ATTESTATION_TYPE, p)) for p in payloads]
    batches.store_batch(
        conn,
        (batch_id, run_id, period, scheme_id, scheme_version, number,
         ATTESTATION_TYPE, len(payloads), root, checkpoint, now),
        [(batch_id, i, row[0], leaf_hashes[i], payloads[i]) for i, row in enumerate(rows)],
        # a standalone region has no hub to push to: its self-addressed batches never
        # enter the outbox, so a hub joined later is sent only batches addressed to it
        # (H3, H13)
        outbox=signer.hub_id != signer.region,
    )  # fmt: skip


def _payloads(
    rows: list[tuple[bytes, int, str, bytes]],
    template: attestation_pb2.Attestation,
    signer: SnapshotSigner,
    batch_id: str,
) -> list[bytes]:
    out: list[bytes] = []
    open_, key = signer.sealer.open, signer.province_key
    m = attestation_pb2.Attestation()
    for i, (subject_key, score, grade, sealed) in enumerate(rows):
        try:
            id_number = open_(bytes(sealed), subject_key).decode("ascii")
        except (SealError, UnicodeDecodeError):
            raise SnapshotError(
                "SEALED_ID_UNREADABLE", "a sealed ID number cannot be opened with the seal key"
            ) from None
        m.CopyFrom(template)
        m.attestation_id = f"{batch_id}/{i}"
        m.grade = grade
        m.score = score
        m.subject_binding = province_pseudonym(key, id_number)
        out.append(m.SerializeToString(deterministic=True))
    return out


def attestation_for(conn: Connection, subject_key: bytes, period: str) -> bytes | None:
    """The person's signed snapshot leaf of ``period`` with its inclusion proof, or None."""
    row = batches.newest_leaf(conn, subject_key, period)
    if row is None or row[2] is None:
        return None
    batch_id, idx, payload, checkpoint, payload_type = row
    hashes = batches.batch_leaf_hashes(conn, batch_id)
    levels = carry_levels(hashes)
    env = attestation_pb2.Envelope()
    env.ParseFromString(bytes(checkpoint))
    return attestation_pb2.SignedAttestation(
        batched=attestation_pb2.BatchedAttestation(
            payload=bytes(payload),
            payload_type=payload_type,
            proof=attestation_pb2.InclusionProof(
                leaf_index=int(idx), tree_size=len(hashes), hashes=path_from_levels(levels, idx)
            ),
            checkpoint=env,
        )
    ).SerializeToString()


def read_province_key(path: Path) -> bytes:
    """A province key file: one hex string of 32 bytes."""
    try:
        value = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise SnapshotError("PROVINCE_KEY_MISSING", f"file {str(path)!r} does not exist") from None
    except (ValueError, UnicodeDecodeError):
        raise SnapshotError("PROVINCE_KEY_INVALID", f"file {str(path)!r} is not hex") from None
    if len(value) != 32:
        raise SnapshotError("PROVINCE_KEY_INVALID", f"file {str(path)!r} must hold 32 bytes")
    return value


def signer_from_config(config: NodeConfig, secrets: NodeSecrets) -> SnapshotSigner:
    """The snapshot signer of a region node (``[hub]`` / ``[federation]`` settings).

    A standalone region (no hub anywhere and no ``[hub] province_key``: what
    ``huxin init region`` writes) still signs its month (H3): the
    batches are addressed to the region itself and their leaves carry a pseudonym
    under a key derived from its storage secret (:func:`standalone_pseudonym_key`),
    since there is no province to share one with (DESIGN "Subjects and privacy":
    the province key is for pushes to the hub).  A node with a hub but no province
    key is still refused (``PROVINCE_KEY_MISSING``).
    """
    from node.federation._push import PushError, hub_target  # federation imports this module

    try:
        hub_id = hub_target(config).hub_id
    except PushError:
        fed = getattr(config, "federation", None)
        hub_id = config.hub.hub_id or (getattr(fed, "hub", "") if fed else "")
    if config.hub.province_key is not None:
        province_key = read_province_key(config.hub.province_key)
    elif not hub_id and not config.hub.endpoint:
        hub_id, province_key = config.region, standalone_pseudonym_key(secrets.storage_secret)
    else:
        raise SnapshotError("PROVINCE_KEY_MISSING", "[hub] province_key is not configured")
    return SnapshotSigner(
        config.region, hub_id, secrets.signing, secrets.sealer, province_key,
        batch_leaves=config.hub.batch_leaves, ttl_days=config.hub.snapshot_ttl_days,
    )  # fmt: skip


def standalone_pseudonym_key(storage_secret: bytes) -> bytes:
    """The leaf-pseudonym key of a region without a hub: ``HMAC-SHA256(storage secret,
    label)`` — domain-separated from subject keys (HMACs of ID numbers), never stored,
    the same for every run of the node."""
    return hmac.new(storage_secret, b"huxin/standalone-snapshot-pseudonym/v1", "sha256").digest()

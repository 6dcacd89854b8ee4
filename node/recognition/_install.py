"""Installing and retiring tables on a node's database, and fetching a peer's tables.

``huxin mapping install|retire`` run these against the node's database, whether
or not the node is serving: each write is one ``BEGIN IMMEDIATE`` transaction
that also adds 1 to ``mapping_generation``; a serving node re-reads the
installed tables when that number changed (:mod:`node.recognition._follow`, each
second), so an install or a retirement takes effect without a
restart, for every request that starts after the re-read.

Invariants: a table is written only after :class:`~node.recognition.Verifier`
accepted it, with an approval only if that approval covers exactly it
(``MAPPING_NOT_APPROVED`` otherwise); a peer's answer is bounded
(:data:`MAX_PEER_TABLES` tables, :data:`MAX_PEER_BYTES` in all) and every table in
it is verified as a file would be — the channel vouches for nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from node.catalogue._fetch import held_trust, peer_endpoint
from node.core._config import NodeConfig
from node.core._errors import PermissionDeniedError
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.recognition._governed import Approved
from node.recognition._verify import TableRefused, VerifiedTable, check_approval_for, table_sha256
from node.rpc._client import peer_channel
from node.store import Connection, immediate
from node.store._mapping_tables import InstalledRow, install_row, retire_rows

__all__ = [
    "MAX_PEER_BYTES",
    "MAX_PEER_TABLES",
    "PeerTable",
    "install",
    "parse_hash_or_id",
    "peer_tables",
    "retire",
]

MAX_PEER_TABLES = 64  # tables taken from one peer's ListMappings
MAX_PEER_BYTES = 8 * 1024 * 1024  # one ListMappings answer
MAX_ID = 128  # characters of a table id given to `retire`
_HASH = re.compile(r"^(sha256:)?([0-9a-f]{64})$")


def parse_hash_or_id(text: str) -> bytes | str:
    """``sha256:<64 hex>`` or 64 hex digits → the 32 hash bytes; else a table id."""
    m = _HASH.match(text.strip().lower())
    if m:
        return bytes.fromhex(m[2])
    if not 1 <= len(text) <= MAX_ID:
        raise TableRefused("BAD_ARGUMENT", f"a table id has 1-{MAX_ID} characters")
    return text


def install(
    conn: Connection,
    verified: VerifiedTable,
    approval: Approved | None,
    *,
    origin: str,
    now: int,
    now_iso: str,
) -> int:
    """Store a verified table (with ``approval`` when it covers it); the new generation."""
    table = verified.table
    if approval is not None:
        check_approval_for(approval.record, table, now, verified_what(table))
    row = InstalledRow(
        table_sha256=table_sha256(table),
        mapping_id=table.id,
        mapping_version=table.version,
        method=table.method.value,
        source_scheme=table.source.key,
        target_scheme=table.target.key,
        content=verified.document,
        approval=None if approval is None else approval.envelope,
        origin=origin,
        installed_at=now_iso,
    )
    try:
        with immediate(conn):
            generation = install_row(conn, row)
    except ValueError as exc:  # rolled back by immediate()
        raise TableRefused("TOO_MANY_TABLES", str(exc).split(": ", 1)[-1]) from None
    return generation


def verified_what(table: object) -> str:
    return f"table {getattr(table, 'id', '?')}@{getattr(table, 'version', '?')}"


def retire(conn: Connection, hash_or_id: bytes | str, now_iso: str) -> list[str]:
    """Retire the matching tables in use (one transaction); ``NOT_INSTALLED`` if none."""
    with immediate(conn):
        done = retire_rows(conn, hash_or_id, now_iso)
    if not done:
        shown = hash_or_id.hex() if isinstance(hash_or_id, bytes) else hash_or_id
        raise TableRefused("NOT_INSTALLED", f"no installed table in use matches {shown!r}")
    return done


@dataclass(frozen=True, slots=True)
class PeerTable:
    content: bytes
    approval: bytes  # b"": the peer served none


async def peer_tables(
    config: NodeConfig, peer: str, now: int, *, timeout: float = 15.0
) -> list[PeerTable]:
    """``peer``'s ListMappings over mutual TLS with the node's own certificate (the peer
    must be a domestic region of the trust list the node holds); unverified."""
    trust = held_trust(config, now)
    entry = trust.regions.get(peer)
    if entry is None or not entry.domestic:
        raise PermissionDeniedError(
            "PEER_NOT_TRUSTED", f"{peer!r} is not a domestic region of the trust list (H17)"
        )
    tls = config.tls
    channel = peer_channel(
        peer_endpoint(entry),
        tls.ca.read_bytes(),
        tls.cert.read_bytes(),
        tls.key.read_bytes(),
        max_bytes=MAX_PEER_BYTES,
    )
    try:
        stub = node_pb2_grpc.PeerServiceStub(channel)
        answer = await stub.ListMappings(node_pb2.ListMappingsRequest(), timeout=timeout)
    finally:
        await channel.close(None)
    if len(answer.tables) > MAX_PEER_TABLES:
        raise TableRefused(
            "TOO_MANY_TABLES", f"{peer} served more than {MAX_PEER_TABLES} tables", f"peer {peer}"
        )
    return [PeerTable(bytes(b.content), bytes(b.approval)) for b in answer.tables]

"""Verification of a mapping table and of its approval records, before any use (C3, H13).

A table document is accepted only when, in this order:

1. it is at most :data:`MAX_TABLE_BYTES` and parses, with its content hash
   holding (``mapping.table_from_document``: ``MALFORMED_TABLE``,
   ``HASH_MISMATCH``);
2. the node knows both schemes at exactly the table's versions (shipped scheme
   files, the version in force, a rollout's candidate): else
   ``UNKNOWN_SCHEME_VERSION`` naming the version;
3. the signatures its method requires verify under the regions' keys from the
   trust state's key sets (``mapping.verify_table``: an agreement by both regions,
   equipercentile histograms each by its region, anchored none;
   ``BAD_SIGNATURE``, ``MISSING_PARTY_SIGNATURE``);
4. every invariant holds against the two schemes (``mapping.require_valid``,
   ``INVARIANT_*``), and the incentive reach is at least the configured floor
   (``INCENTIVE_REACH_TOO_LOW`` with the figure).

An approval record (批准或备案) is an Envelope of a ``MappingApproval`` opened with
``keys.open_approval`` against the node's authorities (the ``[federation]`` hub,
``[mapping.authorities]``): signature first, then the record's fields.  An
approval given with a table must cover exactly that table (hash, source and
target ``id@version``) now or from a later effective date: else
``MAPPING_NOT_APPROVED``.  Every refusal is a :class:`TableRefused` with a stable
code; nothing here reads a file or a database.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from keys import KeysError, VerificationError, approval_covers, open_approval
from keys.pb.v1 import attestation_pb2
from mapping import (
    MappingError,
    MappingTable,
    RegionKeys,
    require_reach,
    require_valid,
    table_from_document,
    verify_table,
)
from node.core._errors import HuxinError
from scoring import Scheme, SchemeError, list_schemes, load_scheme

__all__ = [
    "MAX_APPROVAL_BYTES",
    "MAX_TABLE_BYTES",
    "TableRefused",
    "VerifiedTable",
    "check_approval_for",
    "check_authority_scope",
    "known_schemes",
    "open_approval_bytes",
    "table_sha256",
    "verify_document",
]

MAX_TABLE_BYTES = 256 * 1024  # a table document (grades of two schemes, signatures, histograms)
MAX_APPROVAL_BYTES = 16 * 1024  # one approval envelope
HASH_PREFIX = "sha256:"


class TableRefused(HuxinError):
    """A table or approval the node will not use; ``code`` is stable, ``what`` names the
    file, peer or row it came from."""

    def __init__(self, code: str, message: str, what: str = "") -> None:
        super().__init__(f"{what}: {message}" if what else message)
        self.code = code
        self.message = message
        self.what = what


@dataclass(frozen=True, slots=True)
class VerifiedTable:
    table: MappingTable
    document: bytes  # exactly the bytes that verified


def table_sha256(table: MappingTable) -> bytes:
    """The table's content hash as 32 raw bytes (what approvals and attestations cite)."""
    h = table.content_hash
    return bytes.fromhex(h[len(HASH_PREFIX) :] if h.startswith(HASH_PREFIX) else h)


def known_schemes(extra: Iterable[Scheme] = ()) -> dict[str, Scheme]:
    """``id@version`` -> scheme: the shipped scheme files plus ``extra`` (the version in
    force and a rollout's candidate)."""
    out: dict[str, Scheme] = {}
    for sid in list_schemes():
        try:
            s = load_scheme(sid)
        except SchemeError:
            continue  # a broken shipped file is the scoring tests' concern, never a table's
        out[s.key] = s
    for s in extra:
        out[s.key] = s
    return out


def _refuse(exc: MappingError, what: str) -> TableRefused:
    return TableRefused(exc.code, f"{exc.field}: {exc.message}", what)


def verify_document(
    data: bytes,
    *,
    schemes: Mapping[str, Scheme],
    region_keys: RegionKeys,
    min_reach: str = "",
    what: str = "",
) -> VerifiedTable:
    """The table of ``data`` once steps 1-4 of the module docstring pass."""
    if len(data) > MAX_TABLE_BYTES:
        raise TableRefused("MALFORMED_TABLE", f"larger than {MAX_TABLE_BYTES} bytes", what)
    try:
        table = table_from_document(data)
    except MappingError as exc:
        raise _refuse(exc, what) from None
    for side in (table.source, table.target):
        if side.key not in schemes:
            raise TableRefused(
                "UNKNOWN_SCHEME_VERSION",
                f"table {table.id!r} maps {table.source.key} -> {table.target.key}; this node "
                f"does not know scheme {side.key} (shipped or rolled out) to check it against",
                what,
            )
    source, target = schemes[table.source.key], schemes[table.target.key]
    try:
        verify_table(table, region_keys, source=source, target=target)
        require_valid(table, source, target)
        if min_reach:
            require_reach(table, source, target, floor=min_reach)
    except MappingError as exc:
        raise _refuse(exc, what) from None
    return VerifiedTable(table, bytes(data))


def open_approval_bytes(
    data: bytes, authorities: Mapping[str, bytes], what: str = ""
) -> attestation_pb2.MappingApproval:
    """An approval envelope opened under ``authorities`` (signature before parsing)."""
    if len(data) > MAX_APPROVAL_BYTES:
        raise TableRefused("MALFORMED", f"larger than {MAX_APPROVAL_BYTES} bytes", what)
    try:
        return open_approval(data, authorities)
    except (VerificationError, KeysError) as exc:
        raise TableRefused(exc.code, f"approval does not verify: {exc}", what) from None


def check_approval_for(
    approval: attestation_pb2.MappingApproval, table: MappingTable, now: int, what: str = ""
) -> None:
    """``MAPPING_NOT_APPROVED`` unless ``approval`` covers ``table`` now, or from its own
    later effective date (an approval for another hash, another version pair, or expired)."""
    at = max(now, int(approval.effective_from))
    reason = approval_covers(
        approval,
        mapping_sha256=table_sha256(table),
        source=(table.source.scheme, table.source.version),
        target=(table.target.scheme, table.target.version),
        at=at,
    )
    if reason is not None:
        raise TableRefused(
            "MAPPING_NOT_APPROVED",
            f"the approval does not cover table {table.id!r}: {reason}",
            what,
        )


def check_authority_scope(
    approval: attestation_pb2.MappingApproval,
    hub: str | None,
    hub_regions: Collection[str],
    what: str = "",
) -> None:
    """``APPROVAL_AUTHORITY_NOT_ALLOWED`` when ``approval`` is the hub's own (authority
    ``hub``) for a table not between two regions registered under that hub: a table
    between provinces needs a national authority (issue 16, docs/adr/0207).  An
    approval by any other listed authority (``[mapping.authorities]``, national) passes."""
    if hub is None or approval.authority != hub:
        return
    outside = [r for r in (approval.source_region, approval.target_region) if r not in hub_regions]
    if outside:
        raise TableRefused(
            "APPROVAL_AUTHORITY_NOT_ALLOWED",
            f"hub {hub!r} may approve only tables between its own regions; table "
            f"{approval.mapping_id}@{approval.mapping_version} maps "
            f"{approval.source_region} -> {approval.target_region} and "
            f"{', '.join(dict.fromkeys(outside))} is not a region of that hub: "
            "a national authority must approve it",
            what,
        )

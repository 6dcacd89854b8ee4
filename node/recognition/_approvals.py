"""The hub side of mapping approvals (批准或备案, H13): sign records, vouch for a list.

* :func:`approve_table` checks a table (every invariant, the reach floor) through
  :func:`mapping.approval_for` and signs its approval record with the hub root key
  (the hub as the approving authority, under its hub id).
* :func:`approved_list` opens approval records under the authorities the hub
  accepts (itself, plus national authorities by id and key), refuses any that does
  not open (its reason code and the file named), and signs the ``ApprovedMappings``
  list that goes into ``TrustBundle.mapping_approvals``.
* :func:`shipped_approvals` is the list of every published table between the given
  schemes, approved by the hub or a national authority: what a demo federation or a
  test bed vouches for.

Invariants: nothing is signed that a verifier would refuse (the keys room checks
each record and the list before signing); the list holds at most
``keys.MAX_APPROVED_MAPPINGS`` entries, one per table hash (a second record of the
same table is refused: which one counts would otherwise depend on order).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from keys import (
    MAX_APPROVED_MAPPINGS,
    Envelope,
    KeyPair,
    VerificationError,
    open_approval,
    sign_approval,
    sign_approved_mappings,
)
from keys.pb.v1 import attestation_pb2 as pb
from mapping import MappingTable, approval_for, load_schemes, published_tables
from node.core._errors import FailedPreconditionError, InvalidArgumentError
from node.recognition._verify import TableRefused, check_authority_scope

__all__ = [
    "ApprovalRecord",
    "approve_table",
    "approved_list",
    "shipped_approvals",
    "shipped_tables_between",
]


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A signed approval record, the message it carries and the table it approves."""

    envelope: Envelope
    approval: pb.MappingApproval
    table: MappingTable

    def to_bytes(self) -> bytes:
        return self.envelope.to_bytes()


def approve_table(
    table: MappingTable,
    hub_root: KeyPair,
    *,
    authority: str,
    decision: str,
    issued_at: int,
    min_reach: Fraction | str | None = None,
    effective_from: date | None = None,
) -> ApprovalRecord:
    """The table's approval record signed by ``hub_root`` (mapping and keys errors pass
    through with their codes: ``INVARIANT_*``, ``INCENTIVE_REACH_TOO_LOW``, ...)."""
    schemes = load_schemes(table.source.scheme, table.target.scheme)
    approval = approval_for(
        table,
        schemes[table.source.scheme],
        schemes[table.target.scheme],
        authority=authority,
        decision=decision,
        issued_at=issued_at,
        min_reach=min_reach,
        effective_from=effective_from,
    )
    return ApprovalRecord(sign_approval(approval, hub_root), approval, table)


def approved_list(
    hub: str,
    issued_at: int,
    records: Iterable[tuple[str, bytes]],
    authorities: Mapping[str, bytes],
    hub_root: KeyPair,
    *,
    hub_regions: Collection[str],
) -> Envelope:
    """The hub-signed ``ApprovedMappings`` of ``records`` (``(name, envelope bytes)``), each
    opened under ``authorities`` (id → raw key) first; a record by the hub itself must be
    for a table between two of ``hub_regions`` (the regions registered under it), any other
    needs a national authority.

    ``APPROVAL_REFUSED`` (failed precondition) names the record and the reason code (the
    keys room's, or ``APPROVAL_AUTHORITY_NOT_ALLOWED``); ``INVALID_ARGUMENT`` for a table
    approved twice or more than the bound."""
    approvals: dict[bytes, pb.MappingApproval] = {}
    for name, data in records:
        try:
            approval = open_approval(data, authorities)
        except VerificationError as exc:
            raise FailedPreconditionError(
                "APPROVAL_REFUSED", f"{name}: {exc.code}: {exc.message}", field="approval"
            ) from None
        try:
            check_authority_scope(approval, hub, hub_regions)
        except TableRefused as exc:
            raise FailedPreconditionError(
                "APPROVAL_REFUSED", f"{name}: {exc.code}: {exc.message}", field="approval"
            ) from None
        sha = bytes(approval.mapping_sha256)
        if sha in approvals:
            raise InvalidArgumentError(
                "INVALID_ARGUMENT",
                f"{name}: table {approval.mapping_id}@{approval.mapping_version} is approved twice",
                field="approval",
            )
        approvals[sha] = approval
    if len(approvals) > MAX_APPROVED_MAPPINGS:
        raise InvalidArgumentError(
            "INVALID_ARGUMENT",
            f"at most {MAX_APPROVED_MAPPINGS} approved tables in one list",
            field="approval",
        )
    return sign_approved_mappings(hub, issued_at, approvals.values(), hub_root)


def shipped_tables_between(schemes: Sequence[str]) -> tuple[MappingTable, ...]:
    """The published tables whose source and target are both among ``schemes``."""
    wanted = set(schemes)
    return tuple(
        t for t in published_tables() if t.source.scheme in wanted and t.target.scheme in wanted
    )


def shipped_approvals(
    hub: str,
    issued_at: int,
    hub_root: KeyPair,
    schemes: Sequence[str] | None = None,
    *,
    authority: tuple[str, KeyPair] | None = None,
) -> tuple[Envelope, tuple[ApprovalRecord, ...]]:
    """The hub-signed list approving the published tables between ``schemes`` (default:
    every published table), and the signed records: by ``authority`` (id, key: a national
    authority, which may approve a table between any regions) when given, else by the hub."""
    tables = published_tables() if schemes is None else shipped_tables_between(schemes)
    name, key = authority if authority is not None else (hub, hub_root)
    records = tuple(
        approve_table(t, key, authority=name, decision="approved", issued_at=issued_at)
        for t in tables
    )
    listed = sign_approved_mappings(hub, issued_at, [r.approval for r in records], hub_root)
    return listed, records

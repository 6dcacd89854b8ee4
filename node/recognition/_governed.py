"""The node's governed set of mapping tables: verified tables with their approval records.

A :class:`GovernedSet` is immutable and built only from tables and approvals
that :mod:`node.recognition._verify` accepted; the mapper swaps a whole set in
one assignment when the installed tables change, so a request sees one set.

Invariants: a table appears once (by content hash; a table in the config file
wins over the same table installed); every approval attached to a table names
that table's hash; which approval is in force on a day is decided with
``keys.approval_covers`` at 00:00 UTC of that day (:func:`day_start`), so a grant
and a request on the same day decide alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from keys import approval_covers
from keys.pb.v1 import attestation_pb2
from mapping import MappingTable
from node.recognition._verify import TableRefused, table_sha256

__all__ = ["Approved", "Governed", "GovernedSet", "day_start"]


def day_start(day: date) -> int:
    """Unix seconds of 00:00 UTC of ``day`` (approvals take effect at a day's start)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


@dataclass(frozen=True, slots=True)
class Approved:
    """One opened approval record and its envelope exactly as received."""

    record: attestation_pb2.MappingApproval
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Governed:
    table: MappingTable
    sha256: bytes
    origin: str  # "config" | "file" | "peer:<region>"
    approvals: tuple[Approved, ...] = ()
    retired_at: str | None = None

    def approval_on(self, day: date) -> Approved | None:
        """The approval in force on ``day`` covering exactly this table, if any."""
        at = day_start(day)
        for a in self.approvals:
            reason = approval_covers(
                a.record,
                mapping_sha256=self.sha256,
                source=(self.table.source.scheme, self.table.source.version),
                target=(self.table.target.scheme, self.table.target.version),
                at=at,
            )
            if reason is None:
                return a
        return None

    def why_not_approved(self, day: date) -> str:
        """Why no approval covers this table on ``day`` (for the refusal's message)."""
        if not self.approvals:
            return "no approval record (批准或备案) is installed for it"
        at = day_start(day)
        reasons = [
            approval_covers(
                a.record,
                mapping_sha256=self.sha256,
                source=(self.table.source.scheme, self.table.source.version),
                target=(self.table.target.scheme, self.table.target.version),
                at=at,
            )
            for a in self.approvals
        ]
        return "; ".join(r for r in reasons if r) or "not in force"


@dataclass(frozen=True, slots=True)
class GovernedSet:
    tables: tuple[Governed, ...] = ()
    generation: int = -1  # the database's mapping_generation it was read at; -1: none
    refused: tuple[TableRefused, ...] = field(default=())  # installed rows not usable

    @classmethod
    def of(
        cls,
        tables: Iterable[tuple[MappingTable, str]],
        approvals: Iterable[Approved] = (),
        *,
        generation: int = -1,
        refused: Iterable[TableRefused] = (),
    ) -> GovernedSet:
        """Verified ``(table, origin)`` pairs with the verified approvals that name them;
        the first of two tables with one hash is kept."""
        pool = list(approvals)
        seen: set[bytes] = set()
        out: list[Governed] = []
        for table, origin in tables:
            sha = table_sha256(table)
            if sha in seen:
                continue
            seen.add(sha)
            mine = tuple(a for a in pool if bytes(a.record.mapping_sha256) == sha)
            out.append(Governed(table, sha, origin, mine))
        return cls(tuple(out), generation, tuple(refused))

    def in_use(self) -> list[Governed]:
        """Tables the node may use (retired ones are never in a set; kept for clarity)."""
        return [g for g in self.tables if g.retired_at is None]

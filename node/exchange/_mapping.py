"""Grade mapping for attestations: native grade → a target scheme's grade (C3, H13).

Invariants:

* only governed tables are used: tables of ``[mapping]`` and tables installed
  with ``huxin mapping install``, each verified before use
  (:mod:`node.recognition`); a whole :class:`~node.recognition.GovernedSet` is
  swapped in one assignment (:meth:`Mapper.replace`), so a request sees one set;
* a table is bound to exact scheme versions: the one used maps FROM the version
  of the node's scheme in force (after a rollout, the new one) and, where the
  trust list names the target scheme's versions, INTO one of those; a table for
  other versions is refused ``SCHEME_VERSION_MISMATCH`` naming both, never used;
* a table must be in force on the day of issue (``mapping.check_validity``:
  ``MAPPING_UNAVAILABLE``) and covered on that day by an approval record signed by
  an approving authority (批准或备案): else ``MAPPING_NOT_APPROVED``.  Unapproved
  tables are listed and shown, never issued with;
* every decision depends on the tables alone, never on a person's grade; the
  attestation cites the table's id, version, content hash and method, and the
  native grade always travels next to the mapped one;
* no table into the target → ``MAPPING_UNAVAILABLE`` (NOT_FOUND); the error echoes at
  most ``ECHO_MAX`` characters of the caller's target scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from keys import MappedGrade
from mapping import MappingError, MappingTable, check_validity
from node.core._errors import FailedPreconditionError, NotFoundError
from node.model._rollout import SchemeInForce
from node.pb.v1 import node_pb2
from node.recognition import Governed, GovernedSet, table_sha256
from scoring import Scheme

__all__ = ["Mapper", "table_blob"]

ECHO_MAX = 64  # characters of a caller-supplied scheme id shown in an error
SERVED_MAX = 64  # tables in one ListMappings answer (approved first); a peer takes no more
#: scheme id -> the versions of it the trust list names (empty: not known)
TargetVersions = Callable[[str], frozenset[str]]


def table_blob(table: MappingTable, approval: bytes = b"") -> node_pb2.MappingTableBlob:
    return node_pb2.MappingTableBlob(
        id=table.id,
        version=table.version,
        source_scheme=table.source.key,
        target_scheme=table.target.key,
        method=table.method.value,
        content=table.to_json_bytes(),
        sha256=table_sha256(table),
        approval=approval,
    )


def _unusable(exc: MappingError) -> FailedPreconditionError:
    return FailedPreconditionError(
        "MAPPING_UNAVAILABLE", f"mapping table not usable ({exc.code})", field="target_scheme"
    )


def _no_versions(target_scheme: str) -> frozenset[str]:
    return frozenset()


def _newest_first(g: Governed) -> tuple[object, ...]:
    t = g.table
    return (t.effective_from, t.version, t.target.version)


class Mapper:
    """The node's governed tables FROM its scheme in force, indexed by target scheme id."""

    def __init__(
        self,
        source: SchemeInForce | Scheme,
        governed: GovernedSet | None = None,
        *,
        target_versions: TargetVersions = _no_versions,
    ) -> None:
        self._source = source
        self._set = governed or GovernedSet()
        self._target_versions = target_versions

    @property
    def source(self) -> Scheme:
        """The scheme version in force now (the one every table used must map from)."""
        s = self._source
        return s.current if isinstance(s, SchemeInForce) else s

    @property
    def governed(self) -> GovernedSet:
        return self._set

    @property
    def generation(self) -> int:
        return self._set.generation

    def replace(self, governed: GovernedSet) -> None:
        """Use ``governed`` from now on (one reference assignment)."""
        self._set = governed

    def tables(self) -> list[MappingTable]:
        """Every governed table in use, approved or not (listed, evaluated, shown)."""
        return [g.table for g in self._set.in_use()]

    def served(self, today: date) -> list[tuple[MappingTable, bytes]]:
        """(table, approval envelope or b"") of the tables in use, approved ones first, at
        most :data:`SERVED_MAX`."""
        rows = [(g, g.approval_on(today)) for g in self._set.in_use()]
        rows.sort(key=lambda r: r[1] is None)
        return [
            (g.table, a.envelope if a else (g.approvals[0].envelope if g.approvals else b""))
            for g, a in rows[:SERVED_MAX]
        ]

    def _choose(
        self, target_scheme: str, today: date, target_version: str, source: Scheme | None
    ) -> Governed:
        source = source or self.source
        into = [
            g
            for g in self._set.in_use()
            if g.table.source.scheme == source.id and g.table.target.scheme == target_scheme
        ]
        if not into:
            # The target is the caller's string: echo at most ECHO_MAX characters of it.
            shown = target_scheme[:ECHO_MAX] + ("..." if len(target_scheme) > ECHO_MAX else "")
            raise NotFoundError(
                "MAPPING_UNAVAILABLE",
                f"no mapping table from {source.id!r} to {shown!r}",
                field="target_scheme",
            )
        listed = self._target_versions(target_scheme)
        bound = [
            g
            for g in into
            if g.table.source.version == source.version
            and (not listed or g.table.target.version in listed)
            and (not target_version or g.table.target.version == target_version)
        ]
        if not bound:
            wanted = (
                f"{target_scheme}@{target_version}"
                if target_version
                else " or ".join(f"{target_scheme}@{v}" for v in sorted(listed)) or target_scheme
            )
            have = ", ".join(
                sorted({f"{g.table.source.key} -> {g.table.target.key}" for g in into})
            )
            raise FailedPreconditionError(
                "SCHEME_VERSION_MISMATCH",
                f"no mapping table from {source.key} into {wanted}; installed: {have}",
                field="target_scheme",
            )

        def rank(g: Governed) -> tuple[bool, bool]:
            try:
                check_validity(g.table, today)
            except MappingError:
                return (False, False)
            return (True, g.approval_on(today) is not None)

        bound.sort(key=_newest_first, reverse=True)
        return max(bound, key=rank)  # first of the best: newest in force, approved first

    def usable(
        self,
        target_scheme: str,
        today: date,
        *,
        target_version: str = "",
        source: Scheme | None = None,
    ) -> MappingTable:
        """The table into ``target_scheme`` the node may issue with on ``today``: only one
        into ``target_version`` when given (a scenario's version, so a table into another
        version is never chosen over it), only one from ``source`` when given (the scheme
        the request read once, so a rollout in between cannot mix versions; default: the
        version in force now).

        ``MAPPING_UNAVAILABLE`` (none, or none in force), ``SCHEME_VERSION_MISMATCH``
        (none for the versions), ``MAPPING_NOT_APPROVED`` (no approval in force covers
        it).  Decided from the tables alone, never from a person's grade."""
        chosen = self._choose(target_scheme, today, target_version, source)
        try:
            check_validity(chosen.table, today)
        except MappingError as exc:
            raise _unusable(exc) from None
        if chosen.approval_on(today) is None:
            t = chosen.table
            raise FailedPreconditionError(
                "MAPPING_NOT_APPROVED",
                f"mapping table {t.id}@{t.version} ({t.source.key} -> {t.target.key}) is not "
                f"approved on {today}: {chosen.why_not_approved(today)}",
                field="target_scheme",
            )
        return chosen.table

    def map(
        self,
        grade: str,
        target_scheme: str,
        today: date,
        *,
        target_version: str = "",
        source: Scheme | None = None,
    ) -> MappedGrade:
        """``grade`` mapped with :meth:`usable`'s table (same arguments)."""
        table = self.usable(target_scheme, today, target_version=target_version, source=source)
        try:
            mapped = table.map(grade)
        except MappingError as exc:
            raise _unusable(exc) from None
        return MappedGrade(
            grade=mapped,
            scheme_id=table.target.scheme,
            scheme_version=table.target.version,
            mapping_id=table.id,
            mapping_version=table.version,
            mapping_sha256=table_sha256(table),
            method=table.method.value,
        )

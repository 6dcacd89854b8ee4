"""Loading the node's governed tables: config files, installed rows, peers (C3, H13).

:class:`Verifier` holds what verification needs, fixed when it is built: the
schemes the node knows by ``id@version``, the regions' keys from the trust
state's key sets (and the node's own key set), the approving authorities (the
``[federation]`` hub under its hub id, plus ``[mapping.authorities]``) and the
configured reach floor.

Invariants:

* a table or approval named in ``[mapping]`` that does not verify stops the
  node from starting: :class:`node.core._config.ConfigError` naming the file and the
  reason code (:func:`config_part`);
* an installed row is verified again each time it is read; a row that fails
  verification now (a key set or authority changed) is left out and reported, never used
  (:func:`governed_set`); an installed approval that fails to open now leaves its
  table unapproved;
* a peer's tables (``ListMappings``) are verified here exactly as files are; a
  peer's approval is kept only if it opens under THIS node's authorities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from keys import KeySet, Trust
from mapping import MappingTable, RegionKeys
from node.core._config import ConfigError, NodeConfig
from node.core._observe import log_event
from node.federation._trust import HUB_ENDPOINT_PREFIX, HUB_TAG
from node.recognition._governed import Approved, GovernedSet
from node.recognition._verify import (
    MAX_APPROVAL_BYTES,
    MAX_TABLE_BYTES,
    TableRefused,
    VerifiedTable,
    check_authority_scope,
    known_schemes,
    open_approval_bytes,
    verify_document,
)
from node.store._mapping_tables import InstalledRow
from scoring import Scheme

__all__ = [
    "ConfigPart",
    "Verifier",
    "authorities_of",
    "config_part",
    "governed_set",
    "hub_regions",
    "hub_regions_of",
    "read_file",
    "region_keys_of",
]


def authorities_of(config: NodeConfig) -> dict[str, bytes]:
    """Approving authority id -> raw Ed25519 key: the hub (if federated) and the config's."""
    out = dict(config.mapping.authorities)
    fed = config.federation
    if fed is not None:
        out[fed.hub] = fed.hub_key
    return out


def region_keys_of(trust: Trust | None, own: KeySet) -> dict[str, dict[str, bytes]]:
    """Region -> (key id -> public key): every region of the trust list, and this node's
    own key set (a standalone node knows only its own)."""
    out: dict[str, dict[str, bytes]] = {}
    if trust is not None:
        for region in trust.regions:
            out[region] = trust.region_keys(region)
    out.setdefault(own.region, {}).update({k.key_id: k.public_key for k in own.keys})
    return out


def hub_regions(
    entries: Iterable[tuple[str, Sequence[str]]], issuer: str, hub: str
) -> frozenset[str]:
    """The regions registered under ``hub`` among a trust list's ``(region, endpoints)``
    by ``issuer``: tagged ``hub:<hub>``, or untagged in ``hub``'s own list (it registered
    them).  Peer hubs (``role:hub``) are no region.  The hub's own key may approve a table
    only between two of these (issue 16, docs/adr/0207)."""
    tag = f"{HUB_ENDPOINT_PREFIX}{hub}"
    out = set()
    for region, endpoints in entries:
        if HUB_TAG in endpoints:
            continue
        homes = [e for e in endpoints if e.startswith(HUB_ENDPOINT_PREFIX)]
        if tag in homes or (not homes and issuer == hub):
            out.add(region)
    return frozenset(out)


def hub_regions_of(trust: Trust | None, hub: str) -> frozenset[str]:
    """:func:`hub_regions` of the node's trust list.  No trust list: none, so a hub
    approval waits for the list rather than being taken on faith."""
    if trust is None:
        return frozenset()
    return hub_regions(((r, t.endpoints) for r, t in trust.regions.items()), trust.issuer, hub)


@dataclass(frozen=True, slots=True)
class Verifier:
    schemes: Mapping[str, Scheme]
    region_keys: RegionKeys
    authorities: Mapping[str, bytes]
    min_reach: str = ""
    hub: str | None = None  # the [federation] hub: its own approvals are scoped (ADR 0207)
    hub_regions: frozenset[str] = frozenset()

    @classmethod
    def for_node(
        cls, config: NodeConfig, trust: Trust | None, own: KeySet, schemes: Iterable[Scheme]
    ) -> Verifier:
        """``schemes``: the version in force and a rollout's candidate, beyond the shipped."""
        hub = config.federation.hub if config.federation is not None else None
        return cls(
            known_schemes(schemes),
            region_keys_of(trust, own),
            authorities_of(config),
            config.mapping.min_reach,
            hub,
            hub_regions_of(trust, hub) if hub is not None else frozenset(),
        )

    def table(self, data: bytes, what: str) -> VerifiedTable:
        return verify_document(
            data,
            schemes=self.schemes,
            region_keys=self.region_keys,
            min_reach=self.min_reach,
            what=what,
        )

    def approval(self, data: bytes, what: str) -> Approved:
        return Approved(open_approval_bytes(data, self.authorities, what), bytes(data))

    def in_scope(self, approved: Approved, what: str) -> None:
        """``APPROVAL_AUTHORITY_NOT_ALLOWED`` for a hub approval of a table between
        provinces (:func:`~node.recognition._verify.check_authority_scope`)."""
        check_authority_scope(approved.record, self.hub, self.hub_regions, what)


def read_file(path: Path, limit: int) -> bytes:
    """A table or approval file, at most ``limit`` bytes (``FILE_TOO_LARGE``)."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise TableRefused("FILE_NOT_READABLE", exc.strerror or "cannot read", str(path)) from None
    if len(data) > limit:
        raise TableRefused("FILE_TOO_LARGE", f"larger than {limit} bytes", str(path))
    return data


@dataclass(frozen=True, slots=True)
class ConfigPart:
    """The verified tables and approvals of ``[mapping]`` (read once, at start)."""

    tables: tuple[MappingTable, ...] = ()
    approvals: tuple[Approved, ...] = ()


def config_part(config: NodeConfig, verifier: Verifier) -> ConfigPart:
    """Every ``[mapping]`` file verified; the first that is not stops the node."""
    tables: list[MappingTable] = []
    approvals: list[Approved] = []
    for path in config.mapping.tables:
        try:
            tables.append(verifier.table(read_file(path, MAX_TABLE_BYTES), str(path)).table)
        except TableRefused as exc:
            raise ConfigError("mapping.tables", f"{path}: {exc.code}: {exc.message}") from None
    for path in config.mapping.approvals:
        try:
            approvals.append(verifier.approval(read_file(path, MAX_APPROVAL_BYTES), str(path)))
        except TableRefused as exc:
            raise ConfigError("mapping.approvals", f"{path}: {exc.code}: {exc.message}") from None
    return ConfigPart(tuple(tables), tuple(approvals))


def governed_set(
    part: ConfigPart, rows: Iterable[InstalledRow], verifier: Verifier, generation: int
) -> GovernedSet:
    """The config's tables, then the installed ones, each with every verified approval
    naming its hash; rows failing verification now are left out and reported."""
    tables: list[tuple[MappingTable, str]] = [(t, "config") for t in part.tables]
    approvals = list(part.approvals)
    refused: list[TableRefused] = []
    for row in rows:
        what = f"installed {row.mapping_id}@{row.mapping_version}"
        try:
            tables.append((verifier.table(row.content, what).table, row.origin))
        except TableRefused as exc:
            refused.append(exc)
            log_event("installed mapping table refused", 30, table=what, reason=exc.code)
            continue
        if row.approval is not None:
            try:
                approvals.append(verifier.approval(row.approval, what))
            except TableRefused as exc:
                refused.append(exc)
                log_event("installed approval refused", 30, table=what, reason=exc.code)
    # Scoped here, at every read, not in config_part: the trust list (which regions are
    # the hub's) may arrive after start, and a new list re-reads the set.
    scoped: list[Approved] = []
    for a in approvals:
        try:
            verifier.in_scope(a, f"approval of {a.record.mapping_id}@{a.record.mapping_version}")
        except TableRefused as exc:
            refused.append(exc)
            log_event("approval out of its authority's scope", 30, reason=exc.code)
            continue
        scoped.append(a)
    return GovernedSet.of(tables, scoped, generation=generation, refused=refused)

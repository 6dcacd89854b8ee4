"""Keeping a serving node's governed set current (docs/adr/0207).

At start the node verifies its ``[mapping]`` files (a bad one stops it) and the
installed rows, and builds the mapper's set.  :class:`TablesFollower` then runs
:meth:`~TablesFollower.follow` every ``FOLLOW_SECONDS`` (the node's follower
task): one read of ``mapping_generation``; when it, the scheme version in force
or the trust list's version changed, the installed rows are read and verified
again with a verifier built for the new state, and the new set replaces the old
in one assignment.  So ``huxin mapping install|retire`` reach a running node
within a few seconds, without a restart, and a rollout's new version is matched
against the tables from the moment it is in force.

Invariant: the set in use is always one that was verified whole against one
state (keys, authorities, schemes); a failed re-read keeps the previous set and
is retried at the next tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keys import KeySet
from node.core._config import NodeConfig
from node.core._observe import log_event
from node.federation._trust import TrustState
from node.model._rollout import SchemeInForce, rollout_schemes
from node.recognition._governed import GovernedSet
from node.recognition._load import ConfigPart, Verifier, config_part, governed_set
from node.store import Connection
from node.store._mapping_tables import generation, installed_rows

if TYPE_CHECKING:
    from node.store._db import Database

__all__ = ["FOLLOW_SECONDS", "TablesFollower", "listed_versions"]

FOLLOW_SECONDS = 1.0


def listed_versions(trust: TrustState) -> Callable[[str], frozenset[str]]:
    """Scheme id -> the versions of it the trust list names for any region (``id@version``)."""

    def versions(scheme_id: str) -> frozenset[str]:
        out: set[str] = set()
        for region in trust.regions().values():
            for key in region.schemes:
                sid, _, version = key.partition("@")
                if sid == scheme_id and version:
                    out.add(version)
        return frozenset(out)

    return versions


class TablesFollower:
    """Builds the governed set at start and re-reads it when the state changed."""

    def __init__(
        self,
        config: NodeConfig,
        db: Database,
        trust: TrustState,
        key_set: KeySet,
        in_force: SchemeInForce,
    ) -> None:
        self._config = config
        self._db = db
        self._trust = trust
        self._key_set = key_set
        self._in_force = in_force
        self._part = ConfigPart()
        self._seen: tuple[int, str, int] = (-1, "", -1)

    async def _verifier(self) -> Verifier:
        shipped = self._in_force.shipped
        extra = await self._db.read_unit(lambda c: rollout_schemes(c, shipped))
        return Verifier.for_node(
            self._config,
            self._trust.trust,
            self._key_set,
            [shipped, self._in_force.current, *extra],
        )

    async def start(self) -> GovernedSet:
        """The first set; :class:`~node.core._config.ConfigError` for a bad ``[mapping]`` file."""
        verifier = await self._verifier()
        self._part = config_part(self._config, verifier)
        return await self._read(verifier)

    async def _read(self, verifier: Verifier) -> GovernedSet:
        part = self._part

        def unit(conn: Connection) -> GovernedSet:
            return governed_set(part, installed_rows(conn), verifier, generation(conn))

        governed = await self._db.read_unit(unit)
        self._seen = (governed.generation, self._in_force.current.key, self._trust.version)
        return governed

    async def follow(self, replace: Callable[[GovernedSet], None]) -> bool:
        """Re-read when the generation, the version in force or the trust list changed."""
        gen = await self._db.read_unit(generation)
        if (gen, self._in_force.current.key, self._trust.version) == self._seen:
            return False
        governed = await self._read(await self._verifier())
        replace(governed)
        log_event(
            "mapping tables re-read",
            generation=governed.generation,
            tables=len(governed.tables),
            refused=len(governed.refused),
        )
        return True

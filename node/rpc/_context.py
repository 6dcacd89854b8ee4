"""Everything a servicer needs, assembled once per node (no globals).

Invariants: ``scheme`` is the version in force (the configured scheme, or a
rolled-out version from its effective date — ``in_force`` switches it in one
assignment while the node runs, docs/adr/0507); read it ONCE per request and
use that object throughout; time is read only through ``clock``; the node's
own tokens verify against EVERY key of its root-certified key set
(``PeerServicer._own_keys``), so rotating the signing key keeps outstanding tokens valid;
validity and revocation at the grant time are checked by the verifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from node.core._clock import Clock
from node.core._config import NodeConfig
from node.core._observe import Metrics
from node.core._secrets import NodeSecrets
from node.exchange._mapping import Mapper
from node.federation._callers import CallerCheck
from node.federation._trust import TrustState
from node.model._rollout import SchemeInForce
from node.rpc._identity import IdentityVerifier
from node.store._consents import ConsentsRepository
from node.store._db import Database
from node.store._outbox import Outbox
from node.store._records import RecordsRepository
from node.store._translog import TransparencyLog
from scoring import Scheme, WorkingDayCalendar

__all__ = ["NodeContext"]


@dataclass(frozen=True)
class NodeContext:
    config: NodeConfig
    secrets: NodeSecrets
    db: Database
    in_force: SchemeInForce  # rights: the scheme version in force, switched live (H11)
    clock: Clock
    metrics: Metrics
    identity: IdentityVerifier
    records: RecordsRepository
    consents: ConsentsRepository
    log: TransparencyLog
    mapper: Mapper
    trust: TrustState = field(default_factory=lambda: TrustState(""))  # federation (H17)
    calendar: WorkingDayCalendar = field(default_factory=WorkingDayCalendar)  # rights (H15, N7)
    outbox: Outbox | None = None  # hub: events pushed to the provincial hub (H13)
    callers: CallerCheck | None = None  # peer port: pinned peers, registered clients (ADR 0415)

    @property
    def scheme(self) -> Scheme:
        """The scheme version in force now (one immutable object; read it once)."""
        return self.in_force.current

    def now_s(self) -> int:
        return int(self.clock.now().timestamp())

    def today(self) -> date:
        return self.clock.now().date()

    def now_iso(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")

"""The citizen's remaining rights (N3, N4, N21, N22, N23; docs/adr/0509).

* :mod:`node.rights._optout` — voluntariness (N3, N4): opt out of being scored
  without deregistering, and opt back in;
* :mod:`node.rights._repair` — credit-repair applications (N22) routed to the
  department that filed the record, with working-day deadlines;
* :mod:`node.rights._svc` — the SourceService RPCs departments and the
  operator use for them.

* :mod:`node.rights._objections` — objections (H15, N21): storage, effects and the
  scheduler's step, over the pure state machine in ``scoring``;
* :mod:`node.rights._events` — rights events as units of work: rescoring at once,
  attestation status, notifications;
* :mod:`node.rights._dereg` — deregistration (H2), one unit;
* :mod:`node.rights._supplements` — personal supplementary information (N5, N9);
* :mod:`node.rights._scheduler` — the background task that advances objection
  timers and puts an activated scheme version in force.

May import: ``node.core``, ``node.store``, ``node.exchange``, ``node.disclosure``,
``node.model``, ``node.monthly`` and ``node.rpc`` (the node context, the guard).
"""

from __future__ import annotations

from node.rights._optout import (
    OPTED_OUT_SUBJECTS,
    is_opted_out_sync,
    opt_in,
    opt_out,
    refuse_if_opted_out,
)

__all__ = [
    "OPTED_OUT_SUBJECTS",
    "is_opted_out_sync",
    "opt_in",
    "opt_out",
    "refuse_if_opted_out",
]

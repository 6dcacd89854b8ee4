"""The citizen's remaining rights (N3, N4, N21, N22, N23; docs/adr/0509).

* :mod:`node.rights._optout` — voluntariness (N3, N4): opt out of being scored
  without deregistering, and opt back in;
* :mod:`node.rights._repair` — credit-repair applications (N22) routed to the
  department that filed the record, with working-day deadlines;
* :mod:`node.rights._svc` — the SourceService RPCs departments and the
  operator use for them.

Objections to the score itself (N21) extend :mod:`node._objections`.
"""

from __future__ import annotations

from ._optout import OPTED_OUT_SUBJECTS, is_opted_out_sync, opt_in, opt_out, refuse_if_opted_out

__all__ = [
    "OPTED_OUT_SUBJECTS",
    "is_opted_out_sync",
    "opt_in",
    "opt_out",
    "refuse_if_opted_out",
]

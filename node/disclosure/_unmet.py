"""A subject who no longer meets a consent's scenario: the consent ends, silently to others.

When a request finds that the subject's grade fell below the scenario's tier
after the grant, the relying party must not learn that the person falls short
(H14, N14).  Invariants:

* :func:`end_unmet_consent` runs inside the request's own write unit: the
  consent is withdrawn (``withdrawn_reason`` ``SCENARIO_NOT_MET``) and its
  attestations revoked exactly as a citizen's withdrawal does, the citizen is
  notified and a ``consent_ended`` leaf is appended to the transparency log --
  both visible to the citizen alone;
* the requester is then refused with :func:`node._svc_peer.withdrawn_error`,
  the very error a withdrawn consent gets (status, reason, field and message),
  and every later request meets a withdrawn consent, so the two cases cannot be
  told apart from outside.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from .._repo_consents import end_consent, notify_subject
from .._translog import LogWrite, TransparencyLog
from ._scenarios import Scenario

__all__ = ["REASON", "end_unmet_consent"]

REASON = "SCENARIO_NOT_MET"


def end_unmet_consent(
    conn: sqlite3.Connection,
    log: TransparencyLog,
    *,
    consent_id: str,
    subject_key: bytes,
    scenario: Scenario,
    audience: str,
    now: int,
) -> tuple[int, list[bytes]]:
    """End the consent (see the module docstring); ``(first, leaves)`` for the log mirror."""
    end_consent(conn, consent_id, now=now, reason=REASON)
    said = f"{REASON}: your grade no longer meets tier ≥ {scenario.min_tier} in {scenario.scheme}"
    notify_subject(
        conn,
        subject_key,
        "consent",
        f"{said}; your consent for {scenario.ref} ({scenario.title}) to {audience} ended. "
        f"{audience} was told only that the consent was withdrawn.",
        datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
    )
    return log.append_sync(
        conn,
        [
            LogWrite(
                "consent_ended",
                now,
                subject_key,
                consent_id=consent_id,
                requester=audience,
                purpose=scenario.ref,
                reason=said,
            )
        ],
    )

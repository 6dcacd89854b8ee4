"""The consent rules: when a stored consent may be used, and what a refusal says.

These rules exist here once.  The store only reads and writes consent rows
(:mod:`node.store._consents`); the attestation request
(:func:`node.exchange._issue.issue`), a citizen's list of consents and the
grant's limits all judge a row with the functions below.

Invariants:

* a consent's state at ``now`` is derived from its row: withdrawn wins, then
  expired (``now >= not_after``), then exhausted (``uses >= max_uses``);
* a row is usable by a request iff :func:`refusal_of` returns None; otherwise
  it returns the refusal, its reason chosen in the order of ADR 0301:
  audience, purpose, state (withdrawn, expired, exhausted), not yet valid,
  subject binding;
* a consent whose subject falls short of its scenario is refused exactly as a
  withdrawn one (:func:`withdrawn_error`, H14), so the two cannot be told apart.
"""

from __future__ import annotations

from node.core._errors import FailedPreconditionError, NodeError, PermissionDeniedError
from node.pb.v1 import node_pb2
from node.store._consents import ConsentRow

__all__ = ["ended_at", "refusal_of", "state_of", "withdrawn_error"]

_STATE_ERRORS: dict[int, tuple[str, str]] = {
    node_pb2.CONSENT_STATE_WITHDRAWN: ("CONSENT_WITHDRAWN", "the consent was withdrawn"),
    node_pb2.CONSENT_STATE_EXPIRED: ("CONSENT_EXPIRED", "the consent has expired"),
    node_pb2.CONSENT_STATE_EXHAUSTED: ("CONSENT_EXHAUSTED", "the consent has no uses left"),
}


def state_of(row: ConsentRow, now: int) -> node_pb2.ConsentState.ValueType:
    """The consent's :class:`ConsentState` value at ``now``."""
    if row.withdrawn_at is not None:
        return node_pb2.CONSENT_STATE_WITHDRAWN
    if now >= row.not_after:
        return node_pb2.CONSENT_STATE_EXPIRED
    if row.uses >= row.max_uses:
        return node_pb2.CONSENT_STATE_EXHAUSTED
    return node_pb2.CONSENT_STATE_ACTIVE


def _state_error(state: int) -> FailedPreconditionError:
    code, text = _STATE_ERRORS[state]
    return FailedPreconditionError(code, text, field="consent_token")


def withdrawn_error() -> FailedPreconditionError:
    """The refusal of a withdrawn consent: also what a requester gets when the subject
    falls short of the scenario, so the two cannot be told apart (H14)."""
    return _state_error(node_pb2.CONSENT_STATE_WITHDRAWN)


def refusal_of(
    row: ConsentRow, *, audience: str, purpose: str, binding: bytes, now: int
) -> NodeError | None:
    """Why ``row`` may not serve this request at ``now``, or None when it may."""
    if row.audience != audience:
        return PermissionDeniedError(
            "CONSENT_WRONG_AUDIENCE", "the consent names another audience", field="audience"
        )
    if row.purpose != purpose:
        return PermissionDeniedError(
            "CONSENT_WRONG_PURPOSE", "the consent names another purpose", field="purpose"
        )
    state = state_of(row, now)
    if state in _STATE_ERRORS:
        return _state_error(state)
    if now < row.not_before:
        return FailedPreconditionError(
            "CONSENT_NOT_YET_VALID", "the consent is not yet valid", field="consent_token"
        )
    if binding != row.binding:
        return PermissionDeniedError(
            "SUBJECT_BINDING_MISMATCH",
            "the subject binding does not match the consent",
            field="subject_binding",
        )
    return None


def ended_at(row: ConsentRow) -> int:
    """When the consent stopped being usable (withdrawal, else its end of validity)."""
    if row.withdrawn_at is None:
        return row.not_after
    return min(row.withdrawn_at, row.not_after)

"""The form of an ``AttestationRequest``: checked alike by every node the request reaches.

Invariants:

* :func:`check_attestation_request` is pure (no clock, no node state; the
  shipped scheme catalogues are read once per process and kept): a
  request gets the same verdict — status, reason and field — on every node, so
  the first node it reaches refuses what the home region would refuse for its
  form, BEFORE anything is forwarded (docs/adr/0417): an ID number in a
  purpose never leaves the node it was sent to;
* both the serving path (:class:`node.rpc._peer.PeerServicer`) and the routing
  paths (:class:`node.federation._route.RoutingPeerServicer`,
  ``HubService.RouteAttestation``) call it first, before the caller's
  trust-list check and before the consent token is verified or peeked at;
* a refused value is never echoed; the error names the field only.

Bounds (documented in README, "Routed requests"):

* ``purpose``: 1-128 printable characters, no citizen ID number
  (:func:`node.core._freetext.check_purpose`), and a scenario of a shipped incentive
  catalogue, ``<scheme id>/<scenario id>`` (``UNKNOWN_SCENARIO``,
  :func:`node.disclosure.shipped_scenario`; H14, N14): free text such as
  ``loan`` or ``blacklist_check`` never leaves the first node;
* ``nonce``: 16-64 bytes (``NONCE_INVALID``);
* ``subject_binding``: exactly 32 bytes (an HMAC-SHA256);
* ``target_scheme``: at most 64 printable characters, no ID number (empty: no
  mapping); for a threshold-only scenario empty or the scenario's scheme
  (``TARGET_SCHEME_MISMATCH``: there is no grade to map);
* ``consent_token``: a payload of at most 4 KiB, a payload type of at most 128
  characters, at most 4 signatures (a node signs a grant once) with key ids of
  at most 64 characters.
"""

from __future__ import annotations

from node.core._errors import InvalidArgumentError
from node.core._freetext import check_purpose, refuse_id_numbers
from node.disclosure import check_request_target, shipped_scenario
from node.pb.v1 import node_pb2

__all__ = [
    "BINDING_BYTES",
    "FORM_REASONS",
    "KEY_ID_MAX",
    "NONCE_MAX",
    "NONCE_MIN",
    "TARGET_SCHEME_MAX",
    "TOKEN_PAYLOAD_MAX",
    "TOKEN_SIGNATURES_MAX",
    "TOKEN_TYPE_MAX",
    "check_attestation_request",
]

NONCE_MIN, NONCE_MAX = 16, 64
BINDING_BYTES = 32
TARGET_SCHEME_MAX = 64
TOKEN_PAYLOAD_MAX = 4096
TOKEN_SIGNATURES_MAX = 4
TOKEN_TYPE_MAX = 128
KEY_ID_MAX = 64

#: every reason :func:`check_attestation_request` gives (all INVALID_ARGUMENT)
FORM_REASONS = frozenset(
    {
        "INVALID_FIELD",
        "ID_NUMBER_IN_FIELD",
        "NONCE_INVALID",
        "UNKNOWN_SCENARIO",
        "TARGET_SCHEME_MISMATCH",
    }
)


def _invalid(field: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError("INVALID_FIELD", message, field=field)


def check_attestation_request(request: node_pb2.AttestationRequest) -> None:
    """Refuse a request whose form no node would serve (see the module docstring)."""
    check_purpose(request.purpose)  # signed, stored and put into the citizen's log leaf
    scenario = shipped_scenario(request.purpose)  # incentives only (H14, N14)
    if not NONCE_MIN <= len(request.nonce) <= NONCE_MAX:
        raise InvalidArgumentError(
            "NONCE_INVALID", f"nonce must be {NONCE_MIN}-{NONCE_MAX} bytes", field="nonce"
        )
    if len(request.subject_binding) != BINDING_BYTES:
        raise _invalid("subject_binding", f"must be {BINDING_BYTES} bytes (HMAC-SHA256)")
    target = request.target_scheme
    if len(target) > TARGET_SCHEME_MAX or not target.isprintable():
        raise _invalid("target_scheme", f"at most {TARGET_SCHEME_MAX} printable characters")
    refuse_id_numbers("target_scheme", target)
    check_request_target(scenario, target)
    token = request.consent_token
    if len(token.payload) > TOKEN_PAYLOAD_MAX:
        raise _invalid("consent_token", f"payload of at most {TOKEN_PAYLOAD_MAX} bytes")
    if len(token.payload_type) > TOKEN_TYPE_MAX:
        raise _invalid("consent_token", f"payload type of at most {TOKEN_TYPE_MAX} characters")
    if len(token.signatures) > TOKEN_SIGNATURES_MAX:
        raise _invalid("consent_token", f"at most {TOKEN_SIGNATURES_MAX} signatures")
    if any(len(s.key_id) > KEY_ID_MAX for s in token.signatures):
        raise _invalid("consent_token", f"key ids of at most {KEY_ID_MAX} characters")

"""The form of an AttestationRequest (node.exchange._request_form), as every hop checks it.

Issue 14 item 14: the first hop applies the home region's own checks before it
forwards anything, so the refusal and its reason are the same on every node.
The routed end-to-end table is tests/integration/test_route_refusals.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from node.core._errors import NodeError, map_error
from node.demo._testbed import make_id_number
from node.exchange._request_form import (
    FORM_REASONS,
    TARGET_SCHEME_MAX,
    TOKEN_PAYLOAD_MAX,
    check_attestation_request,
)
from node.federation._route import ADMISSION_REASONS, KNOWN_REASONS, ROUTING_REASONS
from node.pb.v1 import attestation_pb2, node_pb2
from node.rpc._peer import REQUEST_REASONS

ID = make_id_number(7)
ROOT = Path(__file__).resolve().parents[3]


def _good() -> node_pb2.AttestationRequest:
    return node_pb2.AttestationRequest(
        consent_token=attestation_pb2.Envelope(
            payload=b"g" * 200,
            payload_type="application/vnd.huxin.consent.v1+proto",
            signatures=[attestation_pb2.Signature(key_id="k" * 32, sig=b"s" * 64)],
        ),
        subject_binding=b"b" * 32,
        nonce=b"n" * 16,
        target_scheme="hainan",
        purpose="heihe/credit-loans",
    )


def _sigs(n: int, key_id: str = "k" * 32) -> list[attestation_pb2.Signature]:
    return [attestation_pb2.Signature(key_id=key_id, sig=b"s" * 64) for _ in range(n)]


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        pytest.param({"purpose": f"loan {ID}"}, "ID_NUMBER_IN_FIELD", "purpose", id="id-number-in-purpose"),
        pytest.param({"purpose": f"loan {ID[:6]}-{ID[6:14]}-{ID[14:]}"}, "ID_NUMBER_IN_FIELD", "purpose", id="grouped-id-number-in-purpose"),
        pytest.param({"purpose": ""}, "INVALID_FIELD", "purpose", id="empty-purpose"),
        pytest.param({"purpose": "x" * 129}, "INVALID_FIELD", "purpose", id="purpose-too-long"),
        pytest.param({"purpose": "loan\n"}, "INVALID_FIELD", "purpose", id="purpose-not-printable"),
        pytest.param({"nonce": b"n" * 15}, "NONCE_INVALID", "nonce", id="nonce-too-short"),
        pytest.param({"nonce": b"n" * 65}, "NONCE_INVALID", "nonce", id="nonce-too-long"),
        pytest.param({"subject_binding": b"b" * 31}, "INVALID_FIELD", "subject_binding", id="binding-not-32-bytes"),
        pytest.param({"subject_binding": b""}, "INVALID_FIELD", "subject_binding", id="binding-missing"),
        pytest.param({"target_scheme": "h" * (TARGET_SCHEME_MAX + 1)}, "INVALID_FIELD", "target_scheme", id="target-scheme-too-long"),
        pytest.param({"target_scheme": "hainan\x00"}, "INVALID_FIELD", "target_scheme", id="target-scheme-not-printable"),
        pytest.param({"target_scheme": ID}, "ID_NUMBER_IN_FIELD", "target_scheme", id="id-number-in-target-scheme"),
        pytest.param({"payload": b"g" * (TOKEN_PAYLOAD_MAX + 1)}, "INVALID_FIELD", "consent_token", id="token-payload-too-long"),
        pytest.param({"payload_type": "t" * 129}, "INVALID_FIELD", "consent_token", id="token-type-too-long"),
        pytest.param({"signatures": _sigs(5)}, "INVALID_FIELD", "consent_token", id="too-many-signatures"),
        pytest.param({"signatures": _sigs(1, "k" * 65)}, "INVALID_FIELD", "consent_token", id="key-id-too-long"),
        # issue 15 §2: a purpose is a catalogue scenario, never free text (H14, N14)
        pytest.param({"purpose": "loan"}, "UNKNOWN_SCENARIO", "purpose", id="free-text-loan"),
        pytest.param({"purpose": "deny_housing_subsidy"}, "UNKNOWN_SCENARIO", "purpose", id="punitive-deny-housing-subsidy"),
        pytest.param({"purpose": "blacklist_check"}, "UNKNOWN_SCENARIO", "purpose", id="punitive-blacklist-check"),
        pytest.param({"purpose": "heihe/blacklist-check"}, "UNKNOWN_SCENARIO", "purpose", id="unknown-scenario"),
        pytest.param({"purpose": "atlantis/credit-loans"}, "UNKNOWN_SCENARIO", "purpose", id="unknown-scheme"),
        pytest.param({"purpose": "heihe/credit-loans "}, "UNKNOWN_SCENARIO", "purpose", id="scenario-with-trailing-space"),
        pytest.param({"purpose": "Heihe/Credit-Loans"}, "UNKNOWN_SCENARIO", "purpose", id="scenario-wrong-case"),
        pytest.param({"purpose": "heihe/deposit-free-rental"}, "TARGET_SCHEME_MISMATCH", "target_scheme", id="threshold-scenario-mapped-elsewhere"),
    ],
)  # fmt: skip
def test_malformed_requests_are_refused_naming_the_field(
    change: dict[str, object], reason: str, field: str
) -> None:
    """REQ: H5 H14 H17 N14 — issue 14 item 14, issue 15 §2: INVALID_ARGUMENT with a stable
    reason naming the field, the value never echoed; the same verdict on every hop, so a
    free-text or punitive purpose is refused by the first node it reaches."""
    request = _good()
    for key, value in change.items():
        if key in ("payload", "payload_type"):
            setattr(request.consent_token, key, value)
        elif key == "signatures":
            del request.consent_token.signatures[:]
            request.consent_token.signatures.extend(value)  # type: ignore[arg-type]
        else:
            setattr(request, key, value)
    with pytest.raises(NodeError) as info:
        check_attestation_request(request)
    mapped = map_error(info.value)
    assert mapped.status == grpc.StatusCode.INVALID_ARGUMENT
    assert (mapped.reason, info.value.field) == (reason, field)
    assert ("huxin-field", field) in mapped.metadata
    assert ID not in mapped.message and reason in FORM_REASONS


def test_a_well_formed_request_passes() -> None:
    """REQ: H14 N16 — issue 15 §2: catalogue scenarios of the node's scheme and of another
    shipped scheme pass the form check; a threshold scenario may name its own scheme."""
    check_attestation_request(_good())
    empty_target = _good()
    empty_target.target_scheme = ""  # no mapping asked for
    check_attestation_request(empty_target)
    for purpose, target in (
        ("heihe/deposit-free-rental", ""),
        ("heihe/deposit-free-rental", "heihe"),
        ("hainan/bank-credit", ""),
        ("hainan/bank-credit", "hainan"),
    ):
        request = _good()
        request.purpose, request.target_scheme = purpose, target
        check_attestation_request(request)


def _raised_codes(path: Path) -> set[str]:
    """The reason codes ``path`` passes as the first argument of an ``...Error(...)``."""
    codes: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if not name.endswith("Error"):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            codes.add(first.value)
        elif isinstance(first, ast.JoinedStr):  # a code built at run time
            prefix = first.values[0]
            text = prefix.value if isinstance(prefix, ast.Constant) else ""
            if isinstance(text, str) and text.isupper() and text.endswith("_"):
                assert text == "CONSENT_", path  # f"CONSENT_{problem}": a key's problem
                codes |= {"CONSENT_KEY_NOT_VALID", "CONSENT_KEY_REVOKED"}
    return {c for c in codes if c.isupper()}


@pytest.mark.parametrize(
    ("module", "declared"),
    [
        pytest.param("node/rpc/_peer.py", REQUEST_REASONS, id="serving-path"),
        pytest.param("node/exchange/_request_form.py", FORM_REASONS, id="form"),
        pytest.param("node/core/_freetext.py", FORM_REASONS, id="free-text"),
        pytest.param("node/exchange/_mapping.py", REQUEST_REASONS, id="mapping"),
        pytest.param("node/monthly/_published.py", REQUEST_REASONS, id="published-grade"),
        pytest.param("node/disclosure/_scenarios.py", REQUEST_REASONS, id="scenarios"),
        pytest.param("node/derived/_in_force.py", REQUEST_REASONS, id="derived-in-force"),
        pytest.param("node/derived/_attest.py", REQUEST_REASONS, id="derived-grade"),
        pytest.param("node/rpc/_guard.py", ADMISSION_REASONS | {"PEER_NOT_TRUSTED"}, id="guard"),
        pytest.param("node/exchange/_throttle.py", ADMISSION_REASONS, id="throttle"),
        pytest.param("node/federation/_route.py", ROUTING_REASONS, id="routing"),
    ],
)
def test_every_reason_raised_on_the_path_is_relayed_by_name(
    module: str, declared: frozenset[str]
) -> None:
    """REQ: N20 — issue 14 item 14: the reasons a router relays by name are read from the
    modules that raise them; a new reason raised there without being declared fails here
    (it would reach a routed caller as UNSPECIFIED)."""
    raised = _raised_codes(ROOT / module)
    assert raised, module
    assert raised <= declared, sorted(raised - declared)
    assert declared <= KNOWN_REASONS

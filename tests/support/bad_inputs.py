"""The named bad inputs of the citizen's operations, shared by the gRPC and HTTP tests.

One table, two channels (issue 19, "HTTP bad inputs"): each :class:`BadInput` names a
``CitizenService`` operation, the request's fields (as JSON values: the consent
scope by name), the field the refusal must name and its reason.  The gRPC test
(tests/integration/test_input_bounds.py) sends them as protobuf messages
(:func:`grpc_request`), the HTTP test (tests/integration/test_http_api.py) as JSON
to the route that declares the same operation; both assert the same reason and
field, and that nothing was stored.

REQ: H7, H17 (every caller-chosen string and integer bounded, docs/adr/0323, 0800).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from node.pb.v1 import node_pb2

__all__ = [
    "ATTESTATION_BAD_INPUTS",
    "CITIZEN_BAD_INPUTS",
    "JSON_BAD_BODIES",
    "SEED_RECORD",
    "BadBody",
    "BadInput",
    "attestation_json",
    "grpc_request",
]

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
#: a record of the citizen's that the tables name (each test seeds it)
SEED_RECORD = "seed-0"
_SCOPES = {
    "grade": node_pb2.CONSENT_SCOPE_GRADE,
    "grade_and_score": node_pb2.CONSENT_SCOPE_GRADE_AND_SCORE,
    "threshold": node_pb2.CONSENT_SCOPE_THRESHOLD,
}
_REQUESTS: dict[str, type[Message]] = {
    "GrantConsent": node_pb2.GrantConsentRequest,
    "WithdrawConsent": node_pb2.WithdrawConsentRequest,
    "FileObjection": node_pb2.FileObjectionRequest,
    "UploadSupplement": node_pb2.UploadSupplementRequest,
    "ListNotifications": node_pb2.ListNotificationsRequest,
    "QueryLog": node_pb2.QueryLogRequest,
    "ApplyForRepair": node_pb2.RepairApplicationRequest,
}
_PROOF = base64.b64encode(b"\x01" * 32).decode()  # a SHA-256, as JSON carries bytes


@dataclass(frozen=True, slots=True)
class BadInput:
    name: str
    operation: str  # the CitizenService method (the HTTP route's operationId)
    fields: dict[str, Any] = field(hash=False)
    field: str
    reason: str


def _grant(**fields: Any) -> dict[str, Any]:
    return {"audience": "hainan", "purpose": "heihe/credit-loans", "scope": "grade", **fields}


def _upload(**fields: Any) -> dict[str, Any]:
    base = {
        "category": "honour",
        "act_id": "a-1",
        "recognised_on": "2025-01-01",
        "verifier": "heihe-court",
        "proof_sha256": _PROOF,
        "authorise_verification": True,
    }
    return {**base, **fields}


B = BadInput
#: every case is INVALID_ARGUMENT on gRPC and 400 over HTTP
CITIZEN_BAD_INPUTS: tuple[BadInput, ...] = (
    B("grant-purpose-129", "GrantConsent", _grant(purpose="p" * 129), "purpose", "INVALID_FIELD"),
    B("grant-max-uses-2^32-1", "GrantConsent", _grant(max_uses=UINT32_MAX), "max_uses",
      "INVALID_FIELD"),
    B("grant-valid-days-2^32-1", "GrantConsent", _grant(valid_days=UINT32_MAX), "valid_days",
      "VALIDITY_TOO_LONG"),
    B("withdraw-consent-id-65", "WithdrawConsent", {"consent_id": "c" * 65}, "consent_id",
      "INVALID_FIELD"),
    B("withdraw-consent-id-empty", "WithdrawConsent", {"consent_id": ""}, "consent_id",
      "MISSING_FIELD"),
    B("objection-reason-513", "FileObjection", {"record_id": SEED_RECORD, "reason": "r" * 513},
      "reason", "INVALID_FIELD"),
    B("objection-record-id-257", "FileObjection", {"record_id": "r" * 257, "reason": "wrong"},
      "record_id", "INVALID_FIELD"),
    B("objection-source-64", "FileObjection", {"record_id": SEED_RECORD, "source": "s" * 64},
      "source", "INVALID_FIELD"),
    B("upload-description-513", "UploadSupplement", _upload(description="d" * 513),
      "description", "INVALID_FIELD"),
    B("upload-act-id-129", "UploadSupplement", _upload(act_id="a" * 129), "act_id",
      "INVALID_FIELD"),
    B("upload-category-64", "UploadSupplement", _upload(category="c" * 64), "category",
      "INVALID_FIELD"),
    B("upload-verifier-64", "UploadSupplement", _upload(verifier="v" * 64), "verifier",
      "INVALID_FIELD"),
    B("repair-statement-513", "ApplyForRepair",
      {"record_id": SEED_RECORD, "route": "rectification", "statement": "s" * 513}, "statement",
      "INVALID_FIELD"),
    B("notifications-after-id-2^63", "ListNotifications", {"after_id": INT64_MAX + 1},
      "after_id", "INVALID_FIELD"),
    B("notifications-after-id-2^64-1", "ListNotifications", {"after_id": UINT64_MAX},
      "after_id", "INVALID_FIELD"),
    B("query-log-start-index-2^63", "QueryLog", {"start_index": INT64_MAX + 1}, "start_index",
      "INVALID_FIELD"),
    B("query-log-start-index-2^64-1", "QueryLog", {"start_index": UINT64_MAX}, "start_index",
      "INVALID_FIELD"),
    B("query-log-page-size-2^32-1", "QueryLog", {"page_size": UINT32_MAX}, "page_size",
      "INVALID_FIELD"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BadBody:
    """A request body only JSON can carry: its raw bytes, sent to ``operation``'s route."""

    name: str
    operation: str
    raw: bytes
    field: str
    reason: str


_SURROGATE = b'"\\ud800"'  # JSON's escape of a lone UTF-16 surrogate: no UTF-8 holds it
#: the JSON-only rows of the table (issue 19): a lone surrogate has
#: no protobuf encoding (a gRPC client cannot build the message; a peer's bytes of it are
#: not UTF-8 and fail the decoder as MALFORMED_REQUEST) and protobuf has no nesting a
#: caller chooses, so only the HTTP test sends these; every one is 400 over HTTP
JSON_BAD_BODIES: tuple[BadBody, ...] = (
    BadBody("grant-audience-lone-surrogate", "GrantConsent",
            b'{"audience": ' + _SURROGATE + b', "purpose": "heihe/credit-loans"}',
            "audience", "INVALID_FIELD"),
    BadBody("withdraw-consent-id-lone-surrogate", "WithdrawConsent",
            b'{"consent_id": ' + _SURROGATE + b"}", "consent_id", "INVALID_FIELD"),
    BadBody("objection-reason-lone-surrogate", "FileObjection",
            b'{"record_id": "' + SEED_RECORD.encode() + b'", "reason": ' + _SURROGATE + b"}",
            "reason", "INVALID_FIELD"),
    BadBody("opt-in-arrays-nested-100000", "OptIn", b"[" * 100_000, "request",
            "MALFORMED_REQUEST"),
    BadBody("withdraw-objects-nested-50000", "WithdrawConsent", b'{"a":' * 50_000, "request",
            "MALFORMED_REQUEST"),
)  # fmt: skip


def grpc_request(case: BadInput) -> Message:
    """The case's request as the protobuf message of its operation."""
    values = dict(case.fields)
    if "scope" in values:
        values["scope"] = _SCOPES[values["scope"]]
    for name in ("proof_sha256", "evidence_sha256"):
        if name in values:
            values[name] = b"\x01" * 32
    return _REQUESTS[case.operation](**values)


def _attest(**fields: Any) -> dict[str, Any]:
    """An attestation request whose form passes but for ``fields`` (bytes as bytes)."""
    base = {"subject_binding": b"\x02" * 32, "nonce": b"\x03" * 16,
            "purpose": "heihe/credit-loans"}  # fmt: skip
    return {**base, **fields}


#: the integrator's bad attestation requests (issue 19): the gRPC test
#: sends each as PeerService.RequestAttestation, the HTTP test as POST
#: /api/v1/attestations over mutual TLS; both assert this reason and field (all
#: INVALID_ARGUMENT, 400), the form's check (node.exchange._request_form) answering
RA = "RequestAttestation"
ATTESTATION_BAD_INPUTS: tuple[BadInput, ...] = (
    B("nonce-65-bytes", RA, _attest(nonce=b"n" * 65), "nonce", "NONCE_INVALID"),
    B("nonce-15-bytes", RA, _attest(nonce=b"n" * 15), "nonce", "NONCE_INVALID"),
    B("nonce-empty", RA, _attest(nonce=b""), "nonce", "NONCE_INVALID"),
    B("binding-33-bytes", RA, _attest(subject_binding=b"b" * 33), "subject_binding",
      "INVALID_FIELD"),
    B("binding-31-bytes", RA, _attest(subject_binding=b"b" * 31), "subject_binding",
      "INVALID_FIELD"),
    B("target-scheme-65", RA, _attest(target_scheme="t" * 65), "target_scheme",
      "INVALID_FIELD"),
    B("purpose-129", RA, _attest(purpose="p" * 129), "purpose", "INVALID_FIELD"),
    B("purpose-empty", RA, _attest(purpose=""), "purpose", "INVALID_FIELD"),
)  # fmt: skip


def attestation_json(case: BadInput) -> dict[str, Any]:
    """The case's attestation request as JSON (bytes base64, an empty consent token)."""
    return {
        k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
        for k, v in case.fields.items()
    }

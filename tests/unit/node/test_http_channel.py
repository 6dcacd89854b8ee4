"""The HTTP channel's pure parts: the status map derived from the gRPC table, the
request decoder's bounds and the answer encoder (issue 19, docs/adr/0800).

REQ: H17 (one reason, one kind of refusal on every channel; bounds on every input).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc
import pytest

from node.core._errors import (
    InvalidArgumentError,
    NodeError,
    ResourceExhaustedError,
)
from node.http._api import API_ROUTES, GrantConsentBody, QueryLogParams, WithdrawConsentBody
from node.http._codec import decode, decode_query, encode, field_schema, parse_json
from node.http._status import HTTP_STATUS, refusal_of
from node.monthly._batch import BatchError
from node.pb.v1 import node_pb2, scoring_pb2
from node.rpc._status import CLASS_STATUS, REASON_STATUS, map_error
from node.store import CommitInDoubt, StorageUnavailable

#: the classes whose reason is fixed (the database cannot be reached / COMMIT in doubt)
FIXED_REASON = {StorageUnavailable: "STORAGE_UNAVAILABLE", CommitInDoubt: "COMMIT_IN_DOUBT"}


def test_every_grpc_code_has_an_http_status() -> None:
    """Issue 19: no gRPC code falls through to a default."""
    assert set(HTTP_STATUS) == set(grpc.StatusCode)


@pytest.mark.parametrize("cls", list(CLASS_STATUS), ids=lambda c: c.__name__)
def test_a_class_maps_to_the_http_status_of_its_grpc_code(cls: type[NodeError]) -> None:
    """Issue 19: reason -> gRPC code (the one table) -> HTTP status, for every class."""
    if cls in FIXED_REASON:
        exc: NodeError = cls("a message")
        expected = (FIXED_REASON[cls], "")
    else:
        exc, expected = cls("SOME_REASON", "a message", field="f"), ("SOME_REASON", "f")
    refusal = refusal_of(exc)
    assert refusal.status == HTTP_STATUS[map_error(exc).status]
    assert refusal.body["code"] == map_error(exc).status.name
    assert (refusal.body["reason"], refusal.body["field"]) == expected


@pytest.mark.parametrize("reason", sorted(REASON_STATUS))
def test_a_family_reason_maps_as_on_grpc(reason: str) -> None:
    """Issue 19: a family's reason decides the status on both channels alike."""
    refusal = refusal_of(BatchError(reason, "m"))
    assert refusal.status == HTTP_STATUS[REASON_STATUS[reason]]
    assert refusal.body["reason"] == reason


def test_an_unexpected_exception_says_nothing_of_the_implementation() -> None:
    """Issue 19 (H17): INTERNAL, a generic message, no class name."""
    refusal = refusal_of(KeyError("secret detail"))
    assert (refusal.status, refusal.body) == (
        500,
        {"code": "INTERNAL", "reason": "INTERNAL", "field": "", "message": "internal error"},
    )


def test_retry_after_becomes_the_header() -> None:
    """Issue 19: a rate refusal's retry-after reaches an HTTP client as Retry-After."""
    exc = ResourceExhaustedError("CONSENT_RATE_EXCEEDED", "later", details=(("retry-after", "42"),))
    refusal = refusal_of(exc)
    assert (refusal.status, refusal.headers) == (429, {"Retry-After": "42"})


BAD_BODIES: list[tuple[str, type, Any, str, str]] = [
    ("not-an-object", WithdrawConsentBody, [1], "MALFORMED_REQUEST", "request"),
    ("unknown-member", WithdrawConsentBody, {"x": 1}, "INVALID_FIELD", "request"),
    ("string-as-number", WithdrawConsentBody, {"consent_id": 5}, "INVALID_FIELD", "consent_id"),
    ("string-over-bound", WithdrawConsentBody, {"consent_id": "c" * 65}, "INVALID_FIELD",
     "consent_id"),
    ("bool-as-string", GrantConsentBody, {"preview_only": "yes"}, "INVALID_FIELD", "preview_only"),
    ("int-as-bool", GrantConsentBody, {"max_uses": True}, "INVALID_FIELD", "max_uses"),
    ("int-negative", GrantConsentBody, {"valid_days": -1}, "INVALID_FIELD", "valid_days"),
    ("enum-unknown", GrantConsentBody, {"scope": "everything"}, "INVALID_FIELD", "scope"),
    ("float-as-int", QueryLogParams, {"page_size": 1.5}, "INVALID_FIELD", "page_size"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "cls", "data", "reason", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_the_decoder_refuses_naming_the_field(
    name: str, cls: type, data: Any, reason: str, field: str
) -> None:
    """Issue 19: the dataclass's declared bound is the enforced one."""
    with pytest.raises(InvalidArgumentError) as err:
        decode(cls, data)
    assert (err.value.code, err.value.field) == (reason, field)


def test_bytes_that_are_not_json_are_malformed() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        parse_json(b"\xff{")
    assert (err.value.code, err.value.field) == ("MALFORMED_REQUEST", "request")


def test_query_parameters_are_read_as_their_types() -> None:
    assert decode_query(QueryLogParams, {"start_index": "3", "page_size": "10"}) == QueryLogParams(
        3, 10
    )
    with pytest.raises(InvalidArgumentError) as err:
        decode_query(QueryLogParams, {"start_index": "-1"})
    assert err.value.field == "start_index"


def test_every_request_field_documents_its_bound() -> None:
    """Issue 19: every caller-chosen string has maxLength, every integer a range."""
    for route in API_ROUTES:
        for f in dataclasses.fields(route.request):
            schema = field_schema(f)
            if schema["type"] == "string" and "enum" not in schema:
                assert "maxLength" in schema, (route.operation, f.name)
            if schema["type"] == "integer":
                assert {"minimum", "maximum"} <= set(schema), (route.operation, f.name)


def test_the_encoder_writes_every_field_and_null_for_unset_optionals() -> None:
    out = encode(scoring_pb2.ScoreResult(grade="A"))
    assert out["score"] is None and out["grade"] == "A" and out["contributions"] == []
    token = encode(node_pb2.ConsentToken(consent_id="c"))
    assert token["token"] is None and token["preview"] is None

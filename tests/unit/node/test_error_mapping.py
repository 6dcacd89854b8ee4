"""The one place that maps errors to gRPC status codes and stable reasons."""

from __future__ import annotations

import grpc
import pytest

from keys import KeysError, VerificationError
from node.core._errors import (
    FIELD_KEY,
    REASON_KEY,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    map_error,
)
from scoring import RecordError


@pytest.mark.parametrize(
    ("exc", "status", "reason"),
    [
        pytest.param(
            InvalidArgumentError("X", "m"), grpc.StatusCode.INVALID_ARGUMENT, "X", id="invalid"
        ),
        pytest.param(
            UnauthenticatedError("U", "m"), grpc.StatusCode.UNAUTHENTICATED, "U", id="unauth"
        ),
        pytest.param(
            PermissionDeniedError("P", "m"), grpc.StatusCode.PERMISSION_DENIED, "P", id="perm"
        ),
        pytest.param(
            FailedPreconditionError("F", "m"), grpc.StatusCode.FAILED_PRECONDITION, "F", id="pre"
        ),
        pytest.param(NotFoundError("N", "m"), grpc.StatusCode.NOT_FOUND, "N", id="notfound"),
        pytest.param(
            ResourceExhaustedError("R", "m"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "R",
            id="exhausted",
        ),
        pytest.param(
            RecordError("category", "bad", code="FORBIDDEN_CATEGORY"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "FORBIDDEN_CATEGORY",
            id="scoring",
        ),
        pytest.param(
            VerificationError("BAD_SIGNATURE", "no"),
            grpc.StatusCode.UNAUTHENTICATED,
            "BAD_SIGNATURE",
            id="keys-signature",
        ),
        pytest.param(
            VerificationError("EXPIRED", "no"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "EXPIRED",
            id="keys-expired",
        ),
        pytest.param(
            KeysError("f", "m", code="WEAK_KEY"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "WEAK_KEY",
            id="keys",
        ),
    ],
)
def test_domain_errors_map_to_status_and_reason(
    exc: Exception, status: grpc.StatusCode, reason: str
) -> None:
    mapped = map_error(exc)
    assert mapped.status == status
    assert mapped.reason == reason
    assert (REASON_KEY, reason) in mapped.metadata


def test_field_goes_to_metadata() -> None:
    mapped = map_error(InvalidArgumentError("INVALID_FIELD", "bad", field="purpose"))
    assert (FIELD_KEY, "purpose") in mapped.metadata
    assert "purpose" in mapped.message


def test_unknown_errors_say_nothing() -> None:
    """A foreign error's text (e.g. from a peer or a library) never reaches the caller."""
    mapped = map_error(RuntimeError("secret detail 110101199003074514"))
    assert mapped.status == grpc.StatusCode.INTERNAL
    assert mapped.reason == "INTERNAL"
    assert "secret" not in mapped.message
    assert mapped.metadata == ((REASON_KEY, "INTERNAL"),)

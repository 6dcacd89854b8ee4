"""Who is blamed for an error: the caller's input, or the node's own data.

REQ: N15 — a keys error raised on the node's OWN data (unsealing a stored blob,
signing its own output) is ``INTERNAL`` with reason ``OWN_DATA_UNUSABLE``; a keys
error about the caller's input stays ``INVALID_ARGUMENT``/``UNAUTHENTICATED``; a
caller-supplied target scheme is echoed in an error at most ``ECHO_MAX``
characters long.
"""

from __future__ import annotations

from datetime import date

import grpc
import pytest

from keys import KeyRefusedError, KeysError, Sealer, SealError, VerificationError
from node.core._errors import InternalError, NodeError, map_error, own_data
from node.exchange._mapping import ECHO_MAX, Mapper
from scoring import load_scheme

SEALER = Sealer({"seal-1": b"\x05" * 32}, "seal-1")


def _tampered() -> None:
    blob = bytearray(SEALER.seal(b"stored", aad=b"k"))
    blob[-1] ^= 1
    SEALER.open(bytes(blob), b"k")


def _unknown_seal_key() -> None:
    Sealer({"seal-2": b"\x06" * 32}, "seal-2").open(SEALER.seal(b"stored", aad=b"k"), b"k")


def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    "fail",
    [
        _tampered,
        _unknown_seal_key,
        lambda: _raise(KeysError("expires_at", "missing or invalid", code="INVALID_ATTESTATION")),
        lambda: _raise(KeyRefusedError("key", "bad key file", code="INVALID_KEY")),
        lambda: _raise(VerificationError("BAD_SIGNATURE", "stored checkpoint", field="sig")),
    ],
    ids=["tampered-sealed-blob", "unknown-seal-key", "own-attestation", "key-file", "stored-sig"],
)
def test_keys_errors_on_own_data_are_internal(fail: object) -> None:
    with pytest.raises(InternalError) as info, own_data("the stored thing"):
        fail()  # type: ignore[operator]
    mapped = map_error(info.value)
    assert mapped.status == grpc.StatusCode.INTERNAL
    assert mapped.reason == "OWN_DATA_UNUSABLE"
    assert "the stored thing" in mapped.message
    assert isinstance(info.value.__cause__, KeysError)  # kept for the server's own log


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (KeysError("subject_id", "invalid ID number", code="INVALID_ID"), "INVALID_ARGUMENT"),
        (SealError("blob", "malformed"), "INVALID_ARGUMENT"),
        (VerificationError("BAD_SIGNATURE", "no", field="token"), "UNAUTHENTICATED"),
        (VerificationError("WRONG_PAYLOAD_TYPE", "no", field="t"), "INVALID_ARGUMENT"),
    ],
    ids=["caller-id", "caller-blob", "caller-signature", "caller-payload-type"],
)
def test_keys_errors_about_caller_input_keep_their_status(exc: KeysError, status: str) -> None:
    assert map_error(exc).status == getattr(grpc.StatusCode, status)


def test_own_data_passes_other_errors_through() -> None:
    with pytest.raises(ValueError), own_data("x"):
        raise ValueError("not a keys error")
    with pytest.raises(NodeError) as info, own_data("x"):
        raise NodeError("SOMETHING", "kept")
    assert info.value.code == "SOMETHING"


@pytest.mark.parametrize(
    ("target", "echoed"),
    [
        ("nowhere", "'nowhere'"),
        ("x" * ECHO_MAX, repr("x" * ECHO_MAX)),
        ("y" * 100_000, repr("y" * ECHO_MAX + "...")),
    ],
    ids=["short", "at-limit", "huge"],
)
def test_unknown_target_scheme_is_echoed_bounded(target: str, echoed: str) -> None:
    with pytest.raises(NodeError) as info:
        Mapper(load_scheme("heihe")).map("A", target, date(2026, 6, 1))
    mapped = map_error(info.value)
    assert mapped.status == grpc.StatusCode.NOT_FOUND
    assert mapped.reason == "MAPPING_UNAVAILABLE"
    assert ("huxin-field", "target_scheme") in mapped.metadata
    assert mapped.message.endswith(f"to {echoed}")
    assert len(mapped.message) < ECHO_MAX + 120

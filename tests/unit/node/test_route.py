"""Routing: how a downstream refusal is reported, the hop counter, named fields (node.federation._route).

The downstream is a real gRPC server (PeerService) on 127.0.0.1 that refuses
with the status, reason and trailing metadata a test asks for; the error the
router would raise is then mapped by the node's one error mapper
(:func:`node.core._errors.map_error`), i.e. exactly what our caller would see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.core._config import parse_config
from node.core._errors import NodeError, map_error
from node.exchange._throttle import RETRY_AFTER_KEY
from node.federation._route import (
    KNOWN_REASONS,
    MAX_HOPS,
    REFUSED_BY_KEY,
    UPSTREAM_REASON_KEY,
    Router,
    downstream_error,
    parse_hops,
)
from node.federation._trust import HOPS_KEY, TrustState
from node.pb.v1 import attestation_pb2, hub_pb2, node_pb2, node_pb2_grpc
from node.store._db import Database

from .test_trust import HUB, T, _fed_config, signed_list


class _Refuser(node_pb2_grpc.PeerServiceServicer):
    """Refuses every request as told by ``purpose``: ``CODE|key=value|key=value…``."""

    async def RequestAttestation(
        self, request: node_pb2.AttestationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.AttestationResponse:
        code, *pairs = request.purpose.split("|")
        trailing = tuple(tuple(p.split("=", 1)) for p in pairs)
        context.set_trailing_metadata(trailing)  # type: ignore[arg-type]
        await context.abort(grpc.StatusCode[code], "heilongjiang refused the request: FORGED")
        raise AssertionError("unreachable")


@pytest_asyncio.fixture
async def downstream() -> AsyncIterator[node_pb2_grpc.PeerServiceStub]:
    server = aio.server()
    node_pb2_grpc.add_PeerServiceServicer_to_server(_Refuser(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    yield node_pb2_grpc.PeerServiceStub(channel)
    await channel.close()
    await server.stop(None)


async def _refusal(stub: node_pb2_grpc.PeerServiceStub, purpose: str) -> aio.AioRpcError:
    try:
        await stub.RequestAttestation(node_pb2.AttestationRequest(purpose=purpose), timeout=5)
    except aio.AioRpcError as err:
        return err
    raise AssertionError("the downstream answered")


def _meta(mapped: Any) -> dict[str, str]:
    return {k: str(v) for k, v in mapped.metadata}


R = "huxin-reason"
F = "huxin-field"
BY = REFUSED_BY_KEY
LISTED = frozenset({"hainan-hub", "heilongjiang", "heihe"})


@pytest.mark.parametrize(
    ("downstream_says", "status", "reason", "shown", "by", "field", "retry"),
    [
        pytest.param(f"RESOURCE_EXHAUSTED|{R}=QUERY_RATE_EXCEEDED|retry-after=7", "RESOURCE_EXHAUSTED", "QUERY_RATE_EXCEEDED", "QUERY_RATE_EXCEEDED", "hainan-hub", None, "7", id="throttled-keeps-code-and-hint"),
        pytest.param(f"RESOURCE_EXHAUSTED|{R}=QUERY_RATE_EXCEEDED|retry-after=999999999", "RESOURCE_EXHAUSTED", "QUERY_RATE_EXCEEDED", "QUERY_RATE_EXCEEDED", "hainan-hub", None, "3600", id="throttled-hint-clamped-high"),
        pytest.param(f"RESOURCE_EXHAUSTED|{R}=QUERY_RATE_EXCEEDED|retry-after=-5", "RESOURCE_EXHAUSTED", "QUERY_RATE_EXCEEDED", "QUERY_RATE_EXCEEDED", "hainan-hub", None, "1", id="throttled-hint-clamped-low"),
        pytest.param(f"RESOURCE_EXHAUSTED|{R}=TOO_MANY_CONCURRENT_CALLS", "RESOURCE_EXHAUSTED", "TOO_MANY_CONCURRENT_CALLS", "TOO_MANY_CONCURRENT_CALLS", "hainan-hub", None, "1", id="throttled-without-hint-gets-ours"),
        pytest.param(f"RESOURCE_EXHAUSTED|{R}=QUERY_RATE_EXCEEDED|retry-after=soon", "RESOURCE_EXHAUSTED", "QUERY_RATE_EXCEEDED", "QUERY_RATE_EXCEEDED", "hainan-hub", None, "1", id="throttled-garbage-hint"),
        pytest.param(f"PERMISSION_DENIED|{R}=PEER_NOT_TRUSTED", "PERMISSION_DENIED", "PEER_NOT_TRUSTED", "PEER_NOT_TRUSTED", "hainan-hub", None, None, id="permission-denied"),
        pytest.param(f"UNAUTHENTICATED|{R}=BAD_SIGNATURE", "PERMISSION_DENIED", "BAD_SIGNATURE", "BAD_SIGNATURE", "hainan-hub", None, None, id="unauthenticated-is-a-hop-credential"),
        pytest.param(f"NOT_FOUND|{R}=MAPPING_UNAVAILABLE|{F}=target_scheme", "NOT_FOUND", "MAPPING_UNAVAILABLE", "MAPPING_UNAVAILABLE", "hainan-hub", "target_scheme", None, id="not-found"),
        pytest.param(f"INVALID_ARGUMENT|{R}=NONCE_INVALID|{F}=nonce", "INVALID_ARGUMENT", "NONCE_INVALID", "NONCE_INVALID", "hainan-hub", "nonce", None, id="invalid-argument"),
        pytest.param(f"INVALID_ARGUMENT|{R}=ID_NUMBER_IN_FIELD|{F}=purpose|{BY}=heihe", "INVALID_ARGUMENT", "ID_NUMBER_IN_FIELD", "ID_NUMBER_IN_FIELD", "heihe", "purpose", None, id="id-number-in-field-by-the-home-region"),
        pytest.param(f"INVALID_ARGUMENT|{R}=INVALID_FIELD|{F}=purpose; DROP|{BY}=heihe", "INVALID_ARGUMENT", "INVALID_FIELD", "INVALID_FIELD", "heihe", None, None, id="field-not-a-field-name-dropped"),
        pytest.param(f"FAILED_PRECONDITION|{R}=CONSENT_WITHDRAWN", "FAILED_PRECONDITION", "CONSENT_WITHDRAWN", "CONSENT_WITHDRAWN", "hainan-hub", None, None, id="failed-precondition"),
        pytest.param(f"PERMISSION_DENIED|{R}=CONSENT_KEY_REVOKED|{BY}=heihe", "PERMISSION_DENIED", "CONSENT_KEY_REVOKED", "CONSENT_KEY_REVOKED", "heihe", None, None, id="consent-key-revoked"),
        pytest.param(f"FAILED_PRECONDITION|{R}=CONSENT_EXHAUSTED|{BY}=fuzhou", "FAILED_PRECONDITION", "CONSENT_EXHAUSTED", "CONSENT_EXHAUSTED", "hainan-hub", None, None, id="refuser-not-listed-is-the-hop"),
        pytest.param(f"FAILED_PRECONDITION|{R}=CONSENT_EXHAUSTED|{BY}=Heihe Bank", "FAILED_PRECONDITION", "CONSENT_EXHAUSTED", "CONSENT_EXHAUSTED", "hainan-hub", None, None, id="refuser-not-an-id-is-the-hop"),
        pytest.param(f"FAILED_PRECONDITION|{R}=UPSTREAM_REFUSED|{UPSTREAM_REASON_KEY}=CONSENT_EXHAUSTED", "FAILED_PRECONDITION", "CONSENT_EXHAUSTED", "CONSENT_EXHAUSTED", "hainan-hub", None, None, id="relay-without-the-reason-by-name"),
        pytest.param(f"FAILED_PRECONDITION|{R}=UPSTREAM_REFUSED|{UPSTREAM_REASON_KEY}=I_SAY_HAINAN_DID_IT", "FAILED_PRECONDITION", "UPSTREAM_REFUSED", "UNSPECIFIED", "hainan-hub", None, None, id="relayed-unknown-reason"),
        pytest.param(f"FAILED_PRECONDITION|{R}=BLAME_FUZHOU|{F}=purpose", "FAILED_PRECONDITION", "UPSTREAM_REFUSED", "UNSPECIFIED", "hainan-hub", None, None, id="unknown-reason-not-echoed"),
        pytest.param(f"INVALID_ARGUMENT|{R}=BLAME_FUZHOU", "FAILED_PRECONDITION", "UPSTREAM_REFUSED", "UNSPECIFIED", "hainan-hub", None, None, id="unknown-reason-is-ours"),
        pytest.param("PERMISSION_DENIED", "PERMISSION_DENIED", "UPSTREAM_REFUSED", "UNSPECIFIED", "hainan-hub", None, None, id="no-reason"),
        pytest.param(f"DEADLINE_EXCEEDED|{R}=DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", "UPSTREAM_DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", None, None, None, id="deadline"),
        pytest.param(f"UNAVAILABLE|{R}=NO_ROUTE", "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", "NO_ROUTE", None, None, None, id="unavailable"),
        pytest.param(f"INTERNAL|{R}=INTERNAL", "UNAVAILABLE", "UPSTREAM_UNAVAILABLE", "UNSPECIFIED", None, None, None, id="internal"),
    ],
)  # fmt: skip
async def test_downstream_refusals_map_by_table(
    downstream: node_pb2_grpc.PeerServiceStub,
    downstream_says: str,
    status: str,
    reason: str,
    shown: str,
    by: str | None,
    field: str | None,
    retry: str | None,
) -> None:
    """REQ: N20 H17 — issue 14 item 14: a refusal further down reaches our caller with
    the refusing node's own status code, reason and field (a throttle keeps a bounded
    retry hint), ``huxin-upstream-reason`` and ``huxin-refused-by`` naming that node;
    the message is ours and names only listed nodes; unknown reasons are never echoed."""
    err = await _refusal(downstream, downstream_says)
    mapped = map_error(downstream_error("hainan-hub", err, LISTED))
    meta = _meta(mapped)
    assert mapped.status.name == status
    assert (mapped.reason, meta[R]) == (reason, reason)
    assert meta[UPSTREAM_REASON_KEY] == shown
    assert meta.get(BY) == by
    assert meta.get(F) == field
    assert meta.get(RETRY_AFTER_KEY) == retry
    assert "hainan-hub" in mapped.message  # the hop we called ...
    assert (
        "FORGED" not in mapped.message and "fuzhou" not in mapped.message.lower()
    )  # ... no text of its
    if by is not None:
        relayed = "" if by == "hainan-hub" else " (relayed by hainan-hub)"
        assert f"{by} refused the request{relayed}: {shown}" in mapped.message


def test_known_reasons_are_reason_codes() -> None:
    assert all(r.isupper() and " " not in r for r in KNOWN_REASONS)
    assert "UNSPECIFIED" not in KNOWN_REASONS


@pytest.mark.parametrize(
    ("value", "hops"),
    [
        pytest.param("", 0, id="absent"),
        pytest.param("0", 0, id="zero"),
        pytest.param("2", 2, id="two"),
        pytest.param("-1000000", 0, id="negative-cannot-reset-the-bound"),
        pytest.param("99", MAX_HOPS, id="clamped-high"),
        pytest.param(str(10**30), MAX_HOPS, id="huge"),
    ],
)
def test_hops_are_clamped(value: str, hops: int) -> None:
    """REQ: N20 — the loop bound holds whatever a caller sends."""
    assert parse_hops(value) == hops


@pytest.mark.parametrize("value", ["x", "1.5", "0x2", "--1", "1e3"], ids=str)
def test_non_integer_hops_are_refused_naming_the_header(value: str) -> None:
    """REQ: N20 — a hop counter that is not a whole number is refused, naming the header."""
    with pytest.raises(NodeError) as info:
        parse_hops(value)
    mapped = map_error(info.value)
    assert mapped.status == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.code, info.value.field) == ("HOPS_INVALID", HOPS_KEY)


@dataclass
class _HubCtx:
    config: object
    trust: TrustState

    def now_s(self) -> int:
        return T


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    d = await Database.open(tmp_path / "node.db")
    yield d
    await d.close()


async def test_home_region_mismatch_names_the_field(db: Database, tmp_path: Path) -> None:
    """REQ: H17 — a hub refuses a home_region that is not the consent's issuer, naming it."""
    data = _fed_config(route="hub")
    data["node"] = {"region": "heilongjiang", "scheme": "heihe", "role": "hub"}
    ctx = _HubCtx(parse_config(data, tmp_path), TrustState("heilongjiang", hub="heilongjiang",
                                                           hub_key=HUB.root.public_key))  # fmt: skip
    await ctx.trust.offer(db, signed_list(1), T, "file")
    grant = node_pb2.ConsentGrant(issuer_region="heihe")
    token = attestation_pb2.Envelope(payload=grant.SerializeToString())
    request = hub_pb2.RouteAttestationRequest(
        home_region="hainan",
        request=node_pb2.AttestationRequest(
            consent_token=token,
            purpose="heihe/credit-loans",
            nonce=b"n" * 16,
            subject_binding=b"b" * 32,
        ),
    )
    router = Router.__new__(Router)
    router._ctx = ctx  # type: ignore[assignment]
    with pytest.raises(NodeError) as info:
        await router.route_for_hub(ctx, request, "hainan")  # type: ignore[arg-type]
    assert (info.value.code, info.value.field) == ("HOME_REGION_MISMATCH", "home_region")
    assert "huxin-field" in dict(map_error(info.value).metadata)


async def test_hub_route_attestation_checks_the_form_before_anything() -> None:
    """REQ: H17 — issue 14 item 14: HubService.RouteAttestation refuses a malformed
    request before it looks at the trust list or a route (this router could reach
    nothing: it has no context at all)."""
    from node.demo._testbed import make_id_number

    request = hub_pb2.RouteAttestationRequest(
        home_region="heihe",
        request=node_pb2.AttestationRequest(
            purpose=f"loan {make_id_number(3)}", nonce=b"n" * 16, subject_binding=b"b" * 32
        ),
    )
    router = Router.__new__(Router)
    with pytest.raises(NodeError) as info:
        await router.route_for_hub(None, request, "hainan")  # type: ignore[arg-type]
    mapped = map_error(info.value)
    assert mapped.status == grpc.StatusCode.INVALID_ARGUMENT
    assert (mapped.reason, info.value.field) == ("ID_NUMBER_IN_FIELD", "purpose")


@pytest.mark.parametrize("purpose", ["blacklist_check", "deny_housing_subsidy", "heihe/blacklist"])
async def test_hub_route_attestation_refuses_a_purpose_outside_the_catalogue(purpose: str) -> None:
    """REQ: H14 N14 — issue 15 §2: a hub relaying a request refuses a free-text or
    punitive purpose exactly as the home region would (INVALID_ARGUMENT
    UNKNOWN_SCENARIO on the purpose), before it looks at anything else."""
    request = hub_pb2.RouteAttestationRequest(
        home_region="heihe",
        request=node_pb2.AttestationRequest(
            purpose=purpose, nonce=b"n" * 16, subject_binding=b"b" * 32
        ),
    )
    router = Router.__new__(Router)
    with pytest.raises(NodeError) as info:
        await router.route_for_hub(None, request, "hainan")  # type: ignore[arg-type]
    mapped = map_error(info.value)
    assert mapped.status == grpc.StatusCode.INVALID_ARGUMENT
    assert (mapped.reason, info.value.field) == ("UNKNOWN_SCENARIO", "purpose")

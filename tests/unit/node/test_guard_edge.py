"""The guard at the edge, on a real in-process grpc.aio server (docs/adr/0322).

Issue 14 items 5, 6 and 12: the citizen's assertion is verified once per call, on
the headers, and the citizen reaches the handler; every request message has a
deadline; client streams count as calls; and no unexpected error (in a handler,
in serialising its answer, in a message the node parses itself) names a Python
class to the caller — the operator's log has the detail.

REQ: N4 (a verified real-name identity per citizen call), H17, N23.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from keys import KeyPair, subject_key
from node.core._config import Limits
from node.core._observe import Metrics
from node.demo._testbed import make_id_number
from node.pb.v1 import node_pb2
from node.rpc._client import identity_metadata, reason_of
from node.rpc._guard import GuardInterceptor, citizen
from node.rpc._identity import AuthenticatedCitizen, DevIdentityProvider, IdentityVerifier
from tests.support.refusals import expect_refused

SERVICE = "huxin.test.Edge"
SECRET = b"s" * 32
PERSON = make_id_number(5)
NOW = 1_800_000_000
Req, Resp = node_pb2.GetKeySetRequest, node_pb2.GetStatusListRequest


class CountingVerifier(IdentityVerifier):
    """The real verifier, counting how often the guard asks it."""

    calls = 0

    def verify(self, envelope: bytes | None, now: int) -> AuthenticatedCitizen:
        self.calls += 1
        return super().verify(envelope, now)


class _Bed:
    def __init__(self) -> None:
        self.idp = DevIdentityProvider(KeyPair.generate())
        self.verifier = CountingVerifier("heihe", (self.idp.public_key,), SECRET)
        self.guard = GuardInterceptor(
            Limits(max_concurrent_per_peer=2),
            Metrics("heihe"),
            require_certificate=False,
            identity=self.verifier,
            now=lambda: NOW,
            public_methods=frozenset({f"/{SERVICE}/Public"}),
            request_timeout=1.0,
        )
        self.seen: list[AuthenticatedCitizen | None] = []
        self.items: list[Any] = []
        self.release = asyncio.Event()
        self.channel: aio.Channel | None = None

    async def whoami(self, request: Any, context: Any) -> Any:
        self.seen.append(citizen())
        return Resp()

    async def collect(self, requests: AsyncIterator[Any], context: Any) -> Any:
        async for item in requests:
            self.items.append(item)
            await self.release.wait()
        return Resp()

    async def crash(self, request: Any, context: Any) -> Any:
        raise RuntimeError(f"detail about {PERSON}")

    async def wrong_answer(self, request: Any, context: Any) -> Any:
        return "not a message"  # the serializer cannot encode it

    async def own_data(self, request: Any, context: Any) -> Any:
        return node_pb2.ConsentGrant.FromString(b"\xff\xff\xff")  # "our" stored bytes, broken

    def stub(self, name: str, *, stream: bool = False) -> Callable[..., Any]:
        assert self.channel is not None
        make = self.channel.stream_unary if stream else self.channel.unary_unary
        return make(  # type: ignore[no-any-return]
            f"/{SERVICE}/{name}",
            request_serializer=Req.SerializeToString,
            response_deserializer=Resp.FromString,
        )

    def identity(self) -> tuple[tuple[str, bytes], ...]:
        return identity_metadata(self.idp.assertion(PERSON, "heihe", NOW))


@pytest.fixture
async def bed() -> AsyncIterator[_Bed]:
    b = _Bed()
    unary = {
        name: grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=Req.FromString, response_serializer=Resp.SerializeToString
        )
        for name, fn in (
            ("WhoAmI", b.whoami),
            ("Public", b.whoami),
            ("Crash", b.crash),
            ("WrongAnswer", b.wrong_answer),
            ("OwnData", b.own_data),
        )
    }
    unary["Collect"] = grpc.stream_unary_rpc_method_handler(
        b.collect, request_deserializer=Req.FromString, response_serializer=Resp.SerializeToString
    )
    server = aio.server(interceptors=[b.guard])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, unary),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    b.channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield b
    finally:
        await b.channel.close()
        await server.stop(None)


async def test_the_assertion_is_verified_once_and_the_citizen_reaches_the_handler(
    bed: _Bed,
) -> None:
    """issue 14 item 5: one verification per call (a replay cache behind the verifier
    sees each assertion once); the handler gets that citizen; a public method needs
    no assertion and sees none."""
    await bed.stub("WhoAmI")(Req(), metadata=bed.identity())
    assert bed.verifier.calls == 1
    await bed.stub("Public")(Req())
    assert bed.verifier.calls == 1
    first, public = bed.seen
    assert first is not None and first.subject_key == subject_key(SECRET, PERSON)
    assert public is None


async def _refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    err = await expect_refused(call)
    return err.code(), reason_of(err), err.details() or ""


async def test_a_client_stream_counts_and_each_message_has_a_deadline(bed: _Bed) -> None:
    """issue 14 items 5, 6: an open client stream counts against the per-caller limit
    (2 here) until it ends, and a stream whose next message does not come within the
    request timeout is ended DEADLINE_EXCEEDED ``REQUEST_TIMEOUT``."""
    stall = asyncio.Event()

    async def one_then_stall() -> AsyncIterator[Any]:
        yield Req()
        await stall.wait()

    streams = [asyncio.ensure_future(bed.stub("Collect", stream=True)(one_then_stall(), metadata=bed.identity()))
               for _ in range(2)]  # fmt: skip
    async with asyncio.timeout(60):
        while bed.guard.inflight() < 2:
            await asyncio.sleep(0.01)
    code, reason, _ = await _refused(bed.stub("WhoAmI")(Req(), metadata=bed.identity()))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_CONCURRENT_CALLS")
    bed.release.set()  # the handlers now ask for the next message, which never comes
    for stream in streams:
        code, reason, _ = await _refused(stream)
        assert (code, reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "REQUEST_TIMEOUT")
    stall.set()
    assert len(bed.items) == 2 and bed.guard.inflight() == 0


async def test_a_unary_call_without_a_message_is_malformed(bed: _Bed) -> None:
    """issue 14 item 12: a unary method called with no request message at all."""
    empty = bed.channel.stream_unary(f"/{SERVICE}/Public")  # type: ignore[union-attr]
    code, reason, _ = await _refused(empty(iter([])))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")


@pytest.mark.parametrize(
    ("method", "exc_type"),
    [
        pytest.param("Crash", "RuntimeError", id="handler-raises"),
        pytest.param("WrongAnswer", "TypeError", id="answer-does-not-serialise"),
        pytest.param("OwnData", "DecodeError", id="own-bytes-do-not-parse"),
    ],
)
async def test_unexpected_errors_name_no_class_and_are_logged_in_full(
    bed: _Bed, caplog: pytest.LogCaptureFixture, method: str, exc_type: str
) -> None:
    """issue 14 item 12: INTERNAL, reason ``INTERNAL``, a generic message; the class,
    text (ID numbers redacted on output) and place go to the operator's log only."""
    with caplog.at_level(logging.INFO, logger="huxin"):
        code, reason, details = await _refused(bed.stub(method)(Req(), metadata=bed.identity()))
    assert (code, reason, details) == (grpc.StatusCode.INTERNAL, "INTERNAL", "internal error")
    logged = [r.fields for r in caplog.records if r.getMessage() == "internal error"]  # type: ignore[attr-defined]
    assert [f["exc"] for f in logged] == [exc_type]
    assert logged[0]["method"] == method and logged[0]["where"].count(":") == 1

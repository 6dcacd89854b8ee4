"""The gRPC port's limits on the HTTPS listeners (issue 19).

A real ``huxin serve`` with small limits: ``[listen] request_timeout_seconds = 2``,
``peer_max_connections = 3`` (the mutual-TLS listener's cap, as the peer port's),
``[limits] per_peer_concurrency`` of one call for the integrator.  Raw TLS
connections hold a request whose body does not come, so the test needs no timing:
the node answers the held call ``REQUEST_TIMEOUT`` once its own clock says so.

REQ: H17 (availability: a slow or greedy caller cannot starve others), N23.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.http import HttpRegion, http_region

pytestmark = pytest.mark.asyncio(loop_scope="module")

BANK = "heihe.bank"
ATTEST = "/api/v1/attestations"


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpRegion]:
    with http_region(
        tmp_path_factory.mktemp("http-limits"),
        listen="request_timeout_seconds = 2\npeer_max_connections = 3",
        limits=f'per_peer_concurrency = {{ "{BANK}" = 1 }}',
    ) as r:
        yield r


class Raw:
    """One TLS connection speaking HTTP/1.1 by hand (a request can stop half-way)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, r: HttpRegion, client: str | None = BANK) -> Raw:
        context: ssl.SSLContext = r.tls(client)
        port = r.proc.ports["http_mtls" if client else "http_citizen"]
        return cls(*await asyncio.open_connection("127.0.0.1", port, ssl=context))

    def send(self, path: str, body: bytes, *, length: int | None = None) -> None:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)

    async def answer(self) -> tuple[int, dict[str, Any]]:
        status = int((await self.reader.readline()).split()[1])
        size = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                size = int(value)
        return status, json.loads(await self.reader.readexactly(size))

    def close(self) -> None:
        # abort: a TLS close would wait for the peer's close_notify (up to 30 s), and
        # the server would count the connection that long
        self.writer.transport.abort()


async def test_a_body_that_does_not_come_is_request_timeout(region: HttpRegion) -> None:
    """Issue 19 (H17): a caller that announces a body and sends half of it holds
    no handler for longer than ``request_timeout_seconds``: 504 REQUEST_TIMEOUT, as the
    gRPC guard's reason for a message that does not come."""
    held = await Raw.open(region)
    try:
        held.send(ATTEST, b'{"nonce"', length=400)
        status, body = await held.answer()
    finally:
        held.close()
    assert (status, body["code"], body["reason"]) == (504, "DEADLINE_EXCEEDED", "REQUEST_TIMEOUT")


async def test_one_caller_holds_at_most_its_concurrent_calls(region: HttpRegion) -> None:
    """Issue 19 (H17): ``per_peer_concurrency`` of 1 for the integrator: while
    one of its calls is in flight (its body held back) the next is 429
    TOO_MANY_CONCURRENT_CALLS; once the held call ends, the integrator is served again."""
    held = await Raw.open(region)
    second = await Raw.open(region)
    try:
        held.send(ATTEST, b"{", length=400)
        reasons = []
        for _ in range(50):  # until the held call is counted (it has its headers)
            second.send(ATTEST, b"{}")
            status, body = await second.answer()
            reasons.append(body["reason"])
            if body["reason"] == "TOO_MANY_CONCURRENT_CALLS":
                assert (status, body["code"]) == (429, "RESOURCE_EXHAUSTED")
                break
            await asyncio.sleep(0.05)
        assert reasons[-1] == "TOO_MANY_CONCURRENT_CALLS", reasons
        status, body = await held.answer()
        assert body["reason"] == "REQUEST_TIMEOUT"
        second.send(ATTEST, b"{}")
        status, body = await second.answer()
        assert (status, body["reason"]) == (400, "INVALID_FIELD"), body  # served: the form
    finally:
        held.close()
        second.close()


async def _served(region: HttpRegion) -> Raw | None:
    """A new connection that the listener serves (kept open), or None if it is closed."""
    raw = await Raw.open(region)
    raw.send(ATTEST, b"{}")
    try:
        status, _body = await raw.answer()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError):
        raw.close()
        return None
    assert status == 400
    return raw


async def test_the_mutual_tls_listener_takes_the_peer_ports_connection_cap(
    region: HttpRegion,
) -> None:
    """Issue 19 (H17): ``peer_max_connections = 3``: three open connections are
    served; a fourth is closed without an answer; once one closes, a new one is served.
    (Connections of the tests above may still be closing: the loops wait for the server
    to see them gone, asserting no time.)"""
    open_ones: list[Raw] = []
    try:
        for _ in range(2_000):  # a bound on tries, not on time: the machine may be busy
            if len(open_ones) == 3:
                break
            raw = await _served(region)
            if raw is None:
                await asyncio.sleep(0.05)
            else:
                open_ones.append(raw)
        assert len(open_ones) == 3, len(open_ones)
        assert await _served(region) is None  # the fourth: closed at once
        open_ones.pop().close()
        again = None
        for _ in range(2_000):  # until the server has seen the close
            again = await _served(region)
            if again is not None:
                break
            await asyncio.sleep(0.05)
        assert again is not None
        open_ones.append(again)
    finally:
        for raw in open_ones:
            raw.close()

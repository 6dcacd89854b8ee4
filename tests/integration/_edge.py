"""Real nodes for the port- and guard-limit tests (issue 14 items 4, 5, 6, 12, 15).

Everything is real: a federation CA, node directories written by ``init_region``,
``huxin hub register`` through the CLI, mutual TLS on loopback port 0, SQLite
files.  ``listen`` and ``limits`` add keys to the node's TOML before it starts.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
from grpc import aio

from node.cli._init import init_region
from node.demo._testbed import RunningNode, Testbed
from node.rpc._client import peer_channel

__all__ = ["H2Client", "edge_node", "hub_and_region", "region_channel"]


def _toml_values(values: Mapping[str, Any]) -> str:
    return "".join(f"{k} = {v}\n" for k, v in values.items())


def _configure(
    directory: Path, listen: Mapping[str, Any], limits: Mapping[str, Any] | None = None
) -> None:
    toml = directory / "node.toml"
    text = toml.read_text().replace('metrics = ""\n', 'metrics = ""\n' + _toml_values(listen))
    if limits:
        text = text.replace(
            "attestation_ttl_seconds = 600\n",
            "attestation_ttl_seconds = 600\n" + _toml_values(limits),
        )
    toml.write_text(text)


async def edge_node(
    tmp_path: Path, listen: Mapping[str, Any], limits: Mapping[str, Any] | None = None
) -> tuple[Testbed, RunningNode]:
    """A region node ``heihe`` (source ``court``) with extra ``[listen]``/``[limits]`` keys."""
    bed = Testbed(tmp_path)
    assert bed.ca is not None
    init_region(tmp_path / "heihe", "heihe", "heihe", bed.ca, bed.now, sources=("court",))
    _configure(tmp_path / "heihe", listen, limits)
    return bed, await bed.start_node("heihe", "heihe")


async def hub_and_region(
    tmp_path: Path, listen: Mapping[str, Any], limits: Mapping[str, Any] | None = None
) -> tuple[Testbed, RunningNode, RunningNode]:
    """A hub ``heilongjiang`` (with the given keys) and region ``heihe`` registered with it."""
    bed = Testbed(tmp_path)
    assert bed.ca is not None
    hub_dir, region_dir = tmp_path / "heilongjiang", tmp_path / "heihe"
    init_region(hub_dir, "heilongjiang", "heihe", bed.ca, bed.now, role="hub")
    init_region(region_dir, "heihe", "heihe", bed.ca, bed.now, sources=("court",))
    _configure(hub_dir, listen, limits)
    from node.cli._main import main

    assert main(["hub", "register", "--config", str(hub_dir / "node.toml"),
                 "--region-dir", str(region_dir)]) == 0  # fmt: skip
    hub = await bed.start_node("heilongjiang", "heihe")
    region = await bed.start_node("heihe", "heihe")
    return bed, hub, region


def region_channel(bed: Testbed, node: RunningNode, region_dir: Path) -> aio.Channel:
    """A mutual-TLS channel to ``node``'s peer port with the region's own certificate
    (the one its trust-list entry pins)."""
    assert bed.ca is not None
    tls = region_dir / "tls"
    ch = peer_channel(
        node.peer_target,
        bed.ca.cert_pem,
        (tls / "node.pem").read_bytes(),
        (tls / "node.key").read_bytes(),
    )
    bed._channels.append(ch)
    return ch


class H2Client:
    """A bare HTTP/2 client over TLS (ALPN h2) that sends frames exactly as told:
    headers without a message, for instance, which no gRPC client would send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.events: list[h2.events.Event] = []

    @classmethod
    async def open(
        cls, port: int, ca_pem: bytes, client_cert: tuple[Path, Path] | None = None
    ) -> H2Client:
        """Connect to ``port`` (``client_cert``: PEM certificate and key files to present)."""
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
        ctx.check_hostname = False  # the CA is checked; the test talks to 127.0.0.1
        ctx.set_alpn_protocols(["h2"])
        if client_cert is not None:
            ctx.load_cert_chain(*client_cert)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        client = cls(reader, writer)
        client.conn.initiate_connection()
        await client.flush()
        return client

    async def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    def headers_only(self, path: str, metadata: Mapping[str, bytes | str] = {}) -> int:
        """Open a gRPC call to ``path`` and send its headers, no message, no end of stream."""
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        for key, value in metadata.items():
            if isinstance(value, bytes):  # binary metadata travels base64-encoded
                value = base64.b64encode(value).decode()
            headers.append((key, value))
        self.conn.send_headers(stream, headers, end_stream=False)
        return stream

    async def until(
        self, found: Callable[[h2.events.Event], bool], timeout: float = 60.0
    ) -> h2.events.Event:
        """Read until an event matches (bounded; the CI machine may be slow)."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if found(event):
                        return event
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.events += self.conn.receive_data(data)
                await self.flush()  # acknowledge SETTINGS, answer PINGs

    def status_of(self, stream: int) -> dict[str, str]:
        """The gRPC status headers/trailers received on ``stream``."""
        out: dict[str, str] = {}
        for event in self.events:
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived) and (
                event.stream_id == stream
            ):
                out.update({str(k): str(v) for k, v in event.headers or ()})
        return out

    async def close(self) -> None:
        self.writer.transport.abort()  # no TLS close_notify exchange: the test is done

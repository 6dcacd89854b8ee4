"""Upgrading a node from before the client registry (docs/adr/0415).

A node without a registry accepts no integrator or department: a certificate the
federation CA issued before the registry existed is refused with UNAUTHENTICATED
``CLIENT_UNKNOWN``.  ``huxin client register --config node.toml --cert FILE.pem``
registers it (the identity from its SAN), and the running node accepts its next
call without a restart; a certificate of another CA, of another region, or one
already listed is refused with a named error and the registry is unchanged.

One real node (mutual TLS on loopback, real SQLite, real registry file).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from grpc import aio

from node.cli._client import register_certificate
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import CliError, main
from node.core._config import load_config
from node.demo._testbed import RunningNode, Testbed
from node.federation._clients import read_registry
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of


async def _list_objections(bed: Testbed, node: RunningNode, cert: object) -> tuple[str, str]:
    stub = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, cert))  # type: ignore[arg-type]
    try:
        await stub.ListObjections(node_pb2.ListObjectionsRequest(), timeout=60)
    except aio.AioRpcError as err:
        return err.code().name, reason_of(err)
    return "OK", ""


def _cli(*args: str) -> int:
    return main(["client", "register", *args])


async def test_an_unregistered_certificate_is_refused_until_registered_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``Testbed.cert(register=False)`` gives a CA certificate no node lists:
    UNAUTHENTICATED CLIENT_UNKNOWN.  After ``huxin client register`` the running
    node accepts it (no restart); registering it again is CLIENT_EXISTS."""
    bed = Testbed(tmp_path)
    try:
        node = await bed.start_node("heihe", "heihe", sources=("court",))
        old = bed.cert("court", register=False)  # issued before the registry existed
        assert await _list_objections(bed, node, old) == ("UNAUTHENTICATED", "CLIENT_UNKNOWN")

        pem = tmp_path / "court.pem"
        pem.write_bytes(old.cert_pem)
        config = str(node.directory / "node.toml")
        assert _cli("--config", config, "--cert", str(pem)) == 0
        assert "registered court" in capsys.readouterr().out
        assert await _list_objections(bed, node, old) == ("OK", "")

        assert _cli("--config", config, "--cert", str(pem)) == 2
        assert "CLIENT_EXISTS" in capsys.readouterr().err
    finally:
        await bed.close()


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        pytest.param("foreign-ca", "CERTIFICATE_NOT_FROM_CA", id="another-ca-same-name"),
        pytest.param("foreign-ca-named", "CERTIFICATE_NOT_FROM_CA", id="another-ca"),
        pytest.param("other-region", "CLIENT_NOT_OURS", id="client-of-another-region"),
        pytest.param("not-a-cert", "CERTIFICATE_INVALID", id="not-a-certificate"),
    ],
)
async def test_register_refuses_what_is_not_this_nodes_client(
    tmp_path: Path, kind: str, code: str
) -> None:
    """A certificate of another CA (even one with the same name), of another
    region's client or not a certificate at all is refused with its named error by
    the library function the CLI uses; nothing is registered, and the call stays
    refused."""
    bed = Testbed(tmp_path)
    try:
        node = await bed.start_node("heihe", "heihe", sources=("court",))
        config = load_config(node.directory / "node.toml")
        before = read_registry(config.clients.registry)
        cert = None
        if kind == "foreign-ca":
            cert = load_or_create_ca(tmp_path / "rogue-ca", bed.now).issue("court", bed.now)
        elif kind == "foreign-ca-named":
            rogue = load_or_create_ca(tmp_path / "rogue-ca", bed.now, name="rogue-ca")
            cert = rogue.issue("court", bed.now)
        elif kind == "other-region":
            cert = bed.cert("hainan.bank", register=False)
        pem = cert.cert_pem if cert is not None else b"-----BEGIN CERTIFICATE-----\nxx\n"
        with pytest.raises(CliError) as err:
            register_certificate(config, pem, bed.now)
        assert err.value.code == code
        assert read_registry(config.clients.registry) == before
        if kind == "foreign-ca":  # the TLS handshake itself refuses another CA's certificate
            got = await _list_objections(bed, node, cert)
            assert got[0] in {"UNAVAILABLE", "UNAUTHENTICATED"}
    finally:
        await bed.close()


def test_the_cli_prints_the_named_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``huxin client register`` with a foreign CA's certificate exits 2 and prints
    ``error: CERTIFICATE_NOT_FROM_CA``."""
    bed = Testbed(tmp_path)
    assert bed.ca is not None
    init_region(tmp_path / "heihe", "heihe", "heihe", bed.ca, bed.now, sources=("court",))
    rogue = load_or_create_ca(tmp_path / "rogue-ca", bed.now, name="rogue-ca")
    pem = tmp_path / "court.pem"
    pem.write_bytes(rogue.issue("court", bed.now).cert_pem)
    assert _cli("--config", str(tmp_path / "heihe/node.toml"), "--cert", str(pem)) == 2
    assert "CERTIFICATE_NOT_FROM_CA" in capsys.readouterr().err
